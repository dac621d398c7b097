"""The report layer: the round report, one self-contained HTML page read from the store.

page (assembles the page: write_report, render_report), review (the review queue's sections), agreement (the
annotators' sections), html (escaping, formats, inline SVG plots every section uses), assets (CSS and script).

May import: loop/ (the store), connectors/, config, models/, scoring/ and the small shared modules. Never
service/ or the app modules.
"""
