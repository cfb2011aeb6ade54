"""The modes app.py starts: composition (compose), worker and API (modes), one case in
the foreground (single_case) and the demo (demo). Imported only once a mode is chosen."""
