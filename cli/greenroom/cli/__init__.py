"""The ``greenroom`` command line: the one place that composes the dev server and the Agent API.

It sits above both (import-linter keeps ``greenroom.devserver`` and ``greenroom.agents`` from importing each
other): ``greenroom serve`` is the dev server's, ``greenroom demo`` runs the Agent API's demo bots on an
embedded dev server.
"""
