"""The cluster as this broker sees it: an immutable image, and the store that changes it (standalone: local)."""
