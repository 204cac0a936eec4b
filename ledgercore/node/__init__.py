"""A consensus node: Raft-ordered blocks applied through the ledger, over mutual TLS."""

from .config import ConfigError, NodeConfig, Peer
from .node import Node, NotReadyError

__all__ = ["ConfigError", "Node", "NodeConfig", "NotReadyError", "Peer"]
