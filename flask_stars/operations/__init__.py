"""Operations the edges share, written as named steps.

An operation that talks to Telegram and changes the ledger (a refund, an invoice link, a
subscription change) never holds a transaction while Telegram answers. So it is a short
sequence of steps, each named: read what it needs (the read then ended), ask Telegram,
record the answer in one unit of work (``transaction``). The blueprint, the chat flow, the
CLI, the dashboard, reconcile and the Python API call these, never the steps' parts.
"""
