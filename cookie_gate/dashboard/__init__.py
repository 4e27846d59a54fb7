"""The admin dashboard's parts: the query it takes, its words, its charts, its tables and exports, its page.

`cookie_gate.admin` owns the endpoint (token, routing, headers); everything here is pure:
a report and an inventory in, text out.
"""
