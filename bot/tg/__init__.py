"""The Telegram adapter: PTB updates in, dialog responses out. No decisions live here."""
