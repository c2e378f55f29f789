"""Predefined personas, one YAML file each: `Persona.load("<file name without .yaml>")`."""
