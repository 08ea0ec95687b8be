"""Dataset generation, above ``jcomrl.algos`` and writing through ``jcomrl.data``: the behaviour
agents (``behaviour``: brax PPO / SAC and the registry that dispatches by name; ``policies``: the
snapshot container the trainers share; ``per_task_sac``: one SAC agent per task, the papers'
recipe; ``shared_sac``: one task-conditioned agent, the fast recipe; ``resumable``: their
checkpointed host loop), collection (``collect``), the resumable pipeline from behaviour training
to a validated dataset on disk (``pipeline``), the single-task D4RL-style suite (``offline``) and
the data recipes with their provenance (``recipes``)."""
