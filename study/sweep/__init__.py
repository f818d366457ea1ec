"""The sweep layer, the only one that imports Ray: it carries out a :class:`~study.spec.plan.StudyPlan`.

The driver (:mod:`.driver`), the Tuner and its results callback (:mod:`.tuner`), the trial
function (:mod:`.trainable`), the searcher (:mod:`.search`: Optuna, seeds per configuration),
MO-ASHA (:mod:`.moasha`), the console's progress lines (:mod:`.progress`), the cluster's nodes
(:mod:`.nodes`) and the local twin of ``cluster.yaml`` (:mod:`.twin`).
"""
