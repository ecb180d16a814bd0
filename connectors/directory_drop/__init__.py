"""directory-drop: alert files dropped in a folder (.json, .jsonl, .csv) are published."""
