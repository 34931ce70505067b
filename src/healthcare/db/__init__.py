"""The data layer: engine, models, migrations."""
