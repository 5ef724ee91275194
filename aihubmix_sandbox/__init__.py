"""A local AIHubMix emulator for development, the demo, tests and benches.

It stands in for the upstream, so it imports none of our other apps: what it knows about models (which run as
async tasks, how many images a vendor makes by default) is its own copy of the upstream's behaviour, checked
against the catalog by the tests.
"""
