"""Connected components of names linked pairwise (union-find), for identity groups and clusters."""

from __future__ import annotations


class UnionFind:
    """Disjoint sets of strings; the smallest name of a set is its root, so roots are stable.

    Example:
        >>> sets = UnionFind()
        >>> sets.union("ffpp:953", "ffpp:974")
        >>> sets.find("ffpp:974")
        'ffpp:953'
    """

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, name: str) -> str:
        """The root of `name`'s set (a new name is a set of its own)."""
        while self.parent.setdefault(name, name) != name:
            self.parent[name] = self.parent[self.parent[name]]  # path halving
            name = self.parent[name]
        return name

    def union(self, a: str, b: str) -> None:
        """Join the sets of `a` and `b`."""
        a, b = self.find(a), self.find(b)
        if a != b:
            self.parent[max(a, b)] = min(a, b)
