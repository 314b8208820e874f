"""Packaged stress scenarios (installed as the data package ``wfctl_scenarios``).

Only data lives here: the scenario files (``*.toml``) and the definitions they run
(``definitions/``). :mod:`wfctl.stress.scenarios` reads them with ``importlib.resources``.
"""
