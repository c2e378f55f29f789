"""What `simulator generate` offers on the command line, apart from the generators: the CLI's
parser reads these without importing them (every other command starts no slower for it)."""

#: what to generate: tasks from the sources, or attackers from the playbook
KINDS = ("tasks", "adversarial")
DEFAULT_COUNT = 20
#: what generation asks of a model at most per answer, unless --max-tokens says otherwise
DEFAULT_MAX_TOKENS = 2048
#: the playbook's attack kinds, in its order (`playbook.KINDS`; a test holds the two equal)
ATTACK_KINDS = (
    "prompt-injection",
    "system-prompt-extraction",
    "jailbreak",
    "other-customer-data",
    "payment-data",
    "refund-social-engineering",
    "discount-social-engineering",
    "staff-impersonation",
    "indirect-injection",
    "off-topic",
    "abusive-user",
)
