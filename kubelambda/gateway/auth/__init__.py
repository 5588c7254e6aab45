"""Invoke auth: who is calling (SigV4 keys or a Kubernetes bearer token) and whether they may
(the keys' own rules in dev mode, a SubjectAccessReview in a cluster). `sigv4`, `keys`, `cache`
and `errors` are pure; `kubernetes` talks to the API server; `guard` is the aiohttp edge."""
