"""Members: profiles, tags, segments, tiers and lifecycle."""
