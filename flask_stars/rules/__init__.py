"""The money rules, each in one place: in words, as SQL and as Python, side by side.

A rule that decides about money is written twice because it must be: the fast path decides
in one SQL statement (one round trip, atomic against a racing request), and the slow path
reads the row and decides in Python, to say why not. One module per rule holds both forms
under one docstring that states the rule in words, with the same names for its conditions:

- ``sold``: what an order sells (its own record, or the catalogue's pack for an older order);
- ``hold``: the pre-checkout decision (approve, taking the hold, or the refusal's reason);
- ``payable``: a payment that closes its order as paid and is credited;
- ``refund_due``: a second payment for a paid order still to be given back.

The SQL forms are conditions with named bind parameters (``p_*``), for statements their
callers build once per catalogue and dialect and cache; the values come at execute time
(each rule's ``params``). ``tests/money/test_rules_agree.py`` proves, with hypothesis on SQLite
and PostgreSQL, that the two forms of each rule give the same answer over generated orders,
requests, settings and clocks: a change to one form alone fails it.
"""
