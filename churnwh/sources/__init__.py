"""What enters the warehouse: declared sources, the demo simulator, `churnwh init` scaffolding."""
