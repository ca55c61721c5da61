"""mal's tests. A package so that the test packages (``tests.drivers``,
``tests.reliability``) can import the helpers they share from ``tests.support``
with a relative import, under pytest's ``--import-mode=importlib`` and from any
working directory."""
