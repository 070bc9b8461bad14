"""What the recorded run and the smoke run measure: workloads, batch sizes, and each row's settings.

``plans[(workload, batch)]`` is what every row of that workload and batch reads with ``setup.plan.get``:
noise samples / IG steps per case (none: the row is left out), ascent steps (0: left out), rows to skip.
"""

FULL = {
    "workloads": {"lite0": (1, 8), "resnet50": (1, 8)},
    "plans": {  # noise samples / IG steps per case (none: left out), ascent steps (0: left out), methods to skip
        ("lite0", 1): {"sgcampp": (8,), "smoothgrad": (4, 16), "ig": (4, 16), "memory_samples": (16, 64), "ascent_steps": 6,
                         "deletion_steps": (16,), "cascade_stages": 4},
        ("lite0", 8): {"sgcampp": (2,), "smoothgrad": (2,), "ig": (2,), "ascent_steps": 6, "deletion_steps": (16,),
                       "cascade_stages": 4, "explain": (64, 32, 4)},  # explain_dataset: images, batch, curve steps
        ("resnet50", 1): {"sgcampp": (4,), "smoothgrad": (4,), "ig": (4,), "ascent_steps": 6},
        ("resnet50", 8): {"sgcampp": (), "smoothgrad": (), "ig": (), "ascent_steps": 0, "skip": ("Grad-CAM++",)},
    },
    "chunk": 16, "budget": 3.0, "rounds": (3, 5), "memory_batches": (1,),
}
SMOKE = {
    "workloads": {"tiny": (1, 2)},
    "plans": {("tiny", 1): {"sgcampp": (2,), "smoothgrad": (2,), "ig": (2,), "memory_samples": (4,), "ascent_steps": 1,
                            "deletion_steps": (3,), "cascade_stages": 2},
              ("tiny", 2): {"sgcampp": (2,), "smoothgrad": (2,), "ig": (2,), "ascent_steps": 1, "deletion_steps": (3,),
                            "cascade_stages": 2, "explain": (8, 4, 2)}},
    "chunk": 2, "budget": 0.0, "rounds": (1, 1), "memory_batches": (1, 2),
}
