"""Pennylane Company API v2: the tables Comptaflow keeps of it, the client, the connections and their state.

Shared by the gateway (a token is checked with `/me` before it is stored; the state is read) and the
`pennylane-sync` service (everything else). Facts on the API: docs/pennylane.md.
"""
