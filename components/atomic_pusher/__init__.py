"""AtomicPusher: TFX's Pusher whose pushed versions appear atomically and never overwrite one another."""

from components.atomic_pusher.component import AtomicPusher

__all__ = ["AtomicPusher"]
