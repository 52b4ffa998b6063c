"""The workload models (mirrors no kernel file: each the user-space software it names).
Importing a model registers it (workloads/registry.py); workloads/__init__.py imports them
in the suite's order."""
