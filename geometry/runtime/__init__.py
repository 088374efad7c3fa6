"""Runtime: how studies run — background jobs (``jobs``) and torch.distributed sharding
(``distributed``). Study functions never import this package; entry points (CLI, app) pass what
it provides."""
