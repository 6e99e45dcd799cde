"""GNU Radio blocks for zakotfs: :class:`zakotfs_tx` (a source of Zak-OTFS frames, complex64)
and :class:`zakotfs_rx` (acquisition, channel estimation, equalisation and demapping of a
complex64 stream into bits and per-frame PDUs).

The blocks are Python blocks (``gr.sync_block``, ``gr.basic_block``) over the zakotfs
library: the top layer, importing from ``zakotfs`` and ``streaming`` only. GRC block
definitions are in ``gr_zakotfs/grc`` (docs/gnuradio.md says how GNU Radio Companion finds
them); ``gr_zakotfs/examples/tx_channel_rx.grc`` is a flowgraph of transmitter, channel
model and receiver.
"""
from .receiver import zakotfs_rx
from .transmitter import zakotfs_tx

__all__ = ["zakotfs_tx", "zakotfs_rx"]
