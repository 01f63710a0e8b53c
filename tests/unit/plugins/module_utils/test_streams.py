# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_streams: decompression in bounded steps, whatever the stream holds."""

import zstandard

from ansible_collections.botops.runbook.plugins.module_utils._streams import decompress_to


class LargestWrite(object):
    def __init__(self):
        self.largest = self.total = 0

    def write(self, data):
        self.largest = max(self.largest, len(data))
        self.total += len(data)


def test_a_zstd_bomb_decompresses_in_steps_of_at_most_16_mib(tmp_path):
    bomb = tmp_path / "bomb.zst"
    bomb.write_bytes(zstandard.ZstdCompressor().compress(b"\0" * (1 << 30)))
    assert bomb.stat().st_size < 64 * 1024  # 1 GiB of zeros in a few KB
    sink = LargestWrite()
    decompress_to(str(bomb), "zstd", sink)
    assert sink.total == 1 << 30
    assert sink.largest <= 16 * 1024 * 1024  # never the whole GiB in memory at once
