// Anchors the precompiled torch header target; it has no code of its own.
