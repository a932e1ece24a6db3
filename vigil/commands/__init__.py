"""The groups of the `vigil` command that belong to no single package of their own, one module each:
stack, db, config, keys, control, events and status. vigil/cli.py registers them beside the groups
kept with their package (demo, models, samples, node, loadtest); common.py is what all of them share."""
