"""ONNX export strategies: each builds a graph for the same contract in its own way."""

from __future__ import annotations

from rnnx.exporter.strategies.base import ExportContext, Strategy, legacy_onnx_exporter
from rnnx.exporter.strategies.dynamo import DynamoStrategy
from rnnx.exporter.strategies.layer_scan import LayerScanStrategy
from rnnx.exporter.strategies.proj_native import ProjNativeStrategy
from rnnx.exporter.strategies.scan import LegacyScanStrategy, ScanStrategy
from rnnx.exporter.strategies.trace import TraceStrategy

# name -> strategy; dict order is the order "auto" tries them in
STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        TraceStrategy(),
        ProjNativeStrategy(),
        ScanStrategy(),
        LegacyScanStrategy(),
        LayerScanStrategy(),
        DynamoStrategy(),
    )
}
AUTO_ORDER = tuple(
    name for name, s in STRATEGIES.items() if s.auto
)  # trace, proj-native, scan, scan-legacy, layer-scan
# TorchScript-free: torch.export's native-op graph, else Scans built by torch.export. What
# "dynamo" means, and what "auto" tries where torch has no TorchScript-based exporter.
DYNAMO_ORDER = ("dynamo", "scan")


def auto_order() -> tuple[str, ...]:
    """What ``strategy="auto"`` tries: AUTO_ORDER while torch ships its legacy exporter, else DYNAMO_ORDER."""
    return AUTO_ORDER if legacy_onnx_exporter() else DYNAMO_ORDER


__all__ = [
    "AUTO_ORDER",
    "DYNAMO_ORDER",
    "STRATEGIES",
    "ExportContext",
    "Strategy",
    "auto_order",
    "legacy_onnx_exporter",
]
