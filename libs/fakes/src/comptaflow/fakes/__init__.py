"""Local fakes of the external systems Comptaflow reads from, for tests, benchmarks and demos.

Each fake is a subpackage that follows its system's published contract (field names, envelopes, status
codes, error bodies, rate limits) and adds a control plane under `/__admin` (no auth) to move its clock,
add data, mutate it and inject faults:

- `pennylane`: the Pennylane Company API v2 (`comptaflow.fakes.pennylane.FakePennylane`).

`comptaflow fake <system>` runs one in the foreground (`comptaflow.fakes.cli`). A fake imports no
Comptaflow service and no other library of the workspace.
"""
