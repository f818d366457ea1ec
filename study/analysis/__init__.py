"""Analysis of an experiment's Parquet files (no Ray, no TensorFlow): configurations over seeds,
Pareto fronts with their bootstrap uncertainty, hypervolume with fixed bounds, weighting methods
against tuned static weights, overfitting, the paper's recipe comparison and parameter
importance. Plots (:mod:`.plots`) draw only what these functions return, and the report
(:mod:`.report`) puts it together.

The functions below are re-exported here, so ``from study import analysis as A`` reaches them all.
"""
from .configs import (clip_to_range, config_key, config_table, configs_with_front, mean_objectives, metric_columns,
                      pareto_probability, study_objectives, write_front)
from .examples import choose_examples, example_table, examples_markdown, marked
from .fronts import (crowding_distance, finished, nondominated_ranks, pareto_front, pareto_mask,
                     promotion_order, with_pareto_column)
from .hypervolume import (REFERENCE, fixed_hypervolume, hypervolume_history,
                          hypervolume_summary, normalise, objective_bounds)
from .importance import parameter_importance
from .methods import beyond_reference, method_comparison, weighting_of
from .overfitting import (OVERFIT_TOLERANCE, gap_curves, overfitting_point, overfitting_table,
                          stl_vs_mtl_overfitting, task_setting)
from .recipes import (RECIPE_METRICS, TASK_RECIPE_METRICS, compare_to_baseline, per_sample_scores,
                      quality_comparison, verdict)

__all__ = [name for name in dir() if not name.startswith("_")]
