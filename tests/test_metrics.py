"""Evaluation: every library-backed metric against a direct library call, hand-computed metrics
against worked examples / scikit-learn, clinical efficacy against scikit-learn."""
import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, hamming_loss, precision_recall_fscore_support

from study.evaluation import bertscore as B
from study.evaluation import metrics as M
from study.evaluation import text as T
from data.labeler import label_reports
from study.analysis.significance import holm

REFS = ["The heart is enlarged. No pleural effusion.", "The lungs are clear. No pneumothorax.",
        "Mild pulmonary edema, small bilateral effusions.", "No acute process."]
HYPS = ["Heart size is enlarged; there is no pleural effusion!", "Large right pleural effusion.",
        "", "no"]


def coco_inputs(refs, hyps):
    return ({i: [T.normalize_text(r)] for i, r in enumerate(refs)},
            {i: [T.normalize_text(h)] for i, h in enumerate(hyps)})


def test_normalize_text():
    assert T.normalize_text("No  pleural effusion.\nHeart: ENLARGED!") == "no pleural effusion heart enlarged"
    assert T.normalize_text(None) == "" and T.normalize_text(float("nan")) == ""


def test_bleu_matches_pycocoevalcap():
    from pycocoevalcap.bleu.bleu import Bleu

    ours, per_sample = T.bleu(REFS, HYPS)
    corpus, samples = Bleu(4).compute_score(*coco_inputs(REFS, HYPS), verbose=0)
    for n in range(4):
        assert ours[f"bleu{n + 1}"] == pytest.approx(corpus[n], abs=1e-6)
    np.testing.assert_allclose(per_sample, samples[3], atol=1e-6)
    assert per_sample[2] == pytest.approx(0.0, abs=1e-6)  # empty hypothesis scores zero


def test_bleu_edge_cases():
    same, _ = T.bleu(REFS, REFS)
    assert all(same[f"bleu{n}"] == pytest.approx(1.0, abs=1e-6) for n in range(1, 5))
    short, _ = T.bleu(["the heart is enlarged today"], ["heart enlarged"])  # < 4 tokens
    assert 0 < short["bleu1"] < 1 and short["bleu4"] < 1e-3


def test_rouge_l_matches_rouge_score_and_coco():
    from pycocoevalcap.rouge.rouge import Rouge
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"])
    expected = [scorer.score(T.normalize_text(r), T.normalize_text(h))["rougeL"].fmeasure
                for r, h in zip(REFS, HYPS)]
    np.testing.assert_allclose(T.rouge_l(REFS, HYPS), expected, atol=1e-6)
    assert T.rouge_l(REFS, REFS) == pytest.approx([1.0] * 4)
    coco, _ = T.coco_rouge_and_cider(REFS, HYPS)
    assert coco["rouge_l_coco"] == pytest.approx(Rouge().compute_score(*coco_inputs(REFS, HYPS))[0], abs=1e-6)


def test_cider_matches_pycocoevalcap():
    from pycocoevalcap.cider.cider import Cider

    corpus, per_sample = Cider().compute_score(*coco_inputs(REFS, HYPS))
    ours, ours_per_sample = T.coco_rouge_and_cider(REFS, HYPS)
    assert ours["cider"] == pytest.approx(corpus, abs=1e-6)
    np.testing.assert_allclose(ours_per_sample, per_sample, atol=1e-9)


def test_corpus_bleu_from_statistics_matches_pycocoevalcap_on_any_subset():
    """The bootstrap recomputes corpus BLEU from summed per-sample statistics: on every subset
    (with repeats, as a resample has) it must equal pycocoevalcap's Bleu(4) on those samples."""
    from pycocoevalcap.bleu.bleu import Bleu

    refs = REFS + ["Small left pleural effusion. The heart size is normal.", "No focal consolidation."]
    hyps = HYPS + ["There is a small left pleural effusion.", "No focal consolidation is seen today."]
    stats = T.bleu_statistics(refs, hyps)
    assert list(stats.columns) == list(T.BLEU_STATS) and stats.loc[2, "bleu_testlen"] == 0
    for subset in ([0, 1, 2, 3, 4, 5], [4, 4, 5, 0], [1, 3, 3, 3], [5]):
        expected, _ = Bleu(4).compute_score(*coco_inputs([refs[i] for i in subset], [hyps[i] for i in subset]),
                                            verbose=0)
        sums = stats.iloc[subset].sum()
        np.testing.assert_allclose(T.corpus_bleu(sums), expected, rtol=1e-9, atol=1e-12)


def test_bertscore_matches_library_and_ranks_paraphrase_higher():
    from bert_score import score

    model = B.BertScoreConfig().resolved_model()
    refs = ["the heart is enlarged and there is no pleural effusion"] * 2
    hyps = ["cardiomegaly without pleural effusion", "the patient fell from a ladder last week"]
    ours = B.bertscore_f1(refs, hyps)
    _, _, direct = score(hyps, refs, model_type=model, num_layers=6, lang="en")
    np.testing.assert_allclose(ours, direct.numpy(), atol=1e-6)
    assert ours[0] > ours[1]
    assert B.bertscore_f1(["a report"], [""])[0] == 0.0


# ---- clinical efficacy (the labeler itself: tests/test_labeler.py) ----------------------------------
def test_clinical_efficacy_matches_sklearn():
    ce, true, pred = M.clinical_efficacy(label_reports(REFS), label_reports(HYPS))
    assert true[0].tolist() == [0, 1, 0, 0, 0] and pred[1].tolist() == [0, 0, 0, 0, 1]
    for avg, suffix in (("micro", ""), ("macro", "_macro"), ("samples", "_example")):
        p, r, f, _ = precision_recall_fscore_support(true, pred, average=avg, zero_division=0)
        assert (ce[f"ce_precision{suffix}"], ce[f"ce_recall{suffix}"], ce[f"ce_f1{suffix}"]) == pytest.approx((p, r, f))


# ---- classification -----------------------------------------------------------------------------
def test_multilabel_metrics_worked_example():
    true = np.array([[1, 0, 0, 0, 1], [0, 1, 0, 0, 0], [0, 0, 0, 0, 0]])
    prob = np.array([[0.9, 0.2, 0.1, 0.1, 0.4], [0.1, 0.8, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.1, 0.1]])
    m = M.multilabel_metrics(true, prob)
    # predictions: [1,0,0,0,0], [0,1,0,0,0], zeros -> TP 2, FP 0, FN 1
    assert m["ml_precision"] == 1.0 and m["ml_recall"] == pytest.approx(2 / 3)
    assert m["ml_f1"] == pytest.approx(0.8) and m["ml_hamming"] == pytest.approx(1 / 15)
    assert m["ml_exact_match"] == pytest.approx(2 / 3)
    pred = (prob > 0.5).astype(int)
    assert m["ml_f1_macro"] == pytest.approx(precision_recall_fscore_support(true, pred, average="macro", zero_division=0)[2])
    assert m["ml_hamming"] == pytest.approx(hamming_loss(true, pred))
    assert M.multilabel_metrics(true, prob, threshold=0.3)["ml_recall"] == 1.0


def test_multilabel_all_zero_and_single_class():
    zeros = np.zeros((4, 5))
    m = M.multilabel_metrics(zeros, np.zeros((4, 5)))
    assert m["ml_f1"] == 0.0 and m["ml_exact_match"] == 1.0 and m["ml_hamming"] == 0.0
    one = np.zeros((4, 5))
    one[:, 0] = 1
    m = M.multilabel_metrics(one, one * 0.9)
    assert m["ml_f1"] == 1.0 and m["ml_exact_match"] == accuracy_score(one, one)


def test_ordinal_metrics_worked_example():
    from scipy.stats import spearmanr

    m = M.ordinal_metrics([1, 2, 3, 4], [1, 2, 4, 4])
    assert (m["oc_accuracy"], m["oc_mae"], m["oc_mse"]) == pytest.approx((0.75, 0.25, 0.25))
    assert m["oc_acc_corr"] == pytest.approx((0.75 + spearmanr([1, 2, 3, 4], [1, 2, 4, 4]).statistic) / 2)
    two_off = M.ordinal_metrics([1, 2, 3, 4, 5], [3, 2, 3, 4, 4])  # errors 2, 0, 0, 0, 1
    assert (two_off["oc_mae"], two_off["oc_mse"]) == pytest.approx((0.6, 1.0))
    const = M.ordinal_metrics([1, 2, 3], [2, 2, 2])
    assert const["oc_acc_corr"] == pytest.approx(const["oc_accuracy"] / 2)


# ---- significance -------------------------------------------------------------------------------
def test_holm_worked_example():
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(holm([0.5, 0.9]), [1.0, 1.0])


# ---- entry point and command --------------------------------------------------------------------
def test_evaluate_leaves_out_switched_off_tasks():
    metrics, per = M.compute_metrics(sample_ids=["a", "b"], oc_true=[1, 2], oc_pred=[1, 3], bertscore=None)
    assert set(metrics) == {"oc_accuracy", "oc_mae", "oc_mse", "oc_acc_corr"}
    assert list(per.columns) == ["sample_id", "acuity_true", "acuity_pred"]
    metrics, per = M.compute_metrics(references=REFS, generated=HYPS, ml_true=np.zeros((4, 5)),
                              ml_prob=np.zeros((4, 5)), bertscore=None)
    assert {"bleu4", "rouge_l", "ce_f1", "ml_f1"} <= set(metrics) and "oc_accuracy" not in metrics
    assert "bertscore_f1" not in metrics and {"bleu4", "rouge_l", "generated"} <= set(per.columns)


def test_evaluate_command(tmp_path, capsys):
    from study.evaluate import main

    (tmp_path / "refs.txt").write_text("\n".join(REFS[:2]))
    pd.DataFrame({"generated": HYPS[:2]}).to_csv(tmp_path / "hyps.csv", index=False)
    main([str(tmp_path / "refs.txt"), str(tmp_path / "hyps.csv"), "--no-bertscore"])
    printed = json.loads(capsys.readouterr().out)
    # what the command prints, against the reference scorers run here on the same normalised text
    from pycocoevalcap.bleu.bleu import Bleu
    from rouge_score import rouge_scorer

    refs, hyps = [T.normalize_text(r) for r in REFS[:2]], [T.normalize_text(h) for h in HYPS[:2]]
    bleu, _ = Bleu(4).compute_score({i: [r] for i, r in enumerate(refs)}, {i: [h] for i, h in enumerate(hyps)}, verbose=0)
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    rouge = np.mean([scorer.score(r, h)["rougeL"].fmeasure for r, h in zip(refs, hyps)])
    assert [printed[f"bleu{k}"] for k in range(1, 5)] == pytest.approx(bleu)
    assert printed["rouge_l"] == pytest.approx(rouge) and "bertscore_f1" not in printed
    (tmp_path / "bad.csv").write_text("text\nsomething\n")
    with pytest.raises(SystemExit, match="bad.csv: expected a 'generated' column"):
        main([str(tmp_path / "refs.txt"), str(tmp_path / "bad.csv")])


def test_learned_scorers_without_weights_are_skipped_with_one_line_each():
    """CheXbert / RadGraph never download: without the package or its weights (as on CI), each
    requested scorer is skipped with one line naming what is missing."""
    from study.evaluation.scorers import usable

    lines = []
    assert usable(["chexbert", "radgraph"], announce=lines.append) == ()
    assert [line.split(":")[0] for line in lines] == ["chexbert_f1 skipped", "radgraph_f1 skipped"]


def test_learned_scores_join_the_text_metrics(monkeypatch):
    from study.evaluation import scorers

    monkeypatch.setattr(scorers, "score", lambda name, refs, hyps: {scorers.METRIC[name]: 0.25 * len(refs)})
    metrics, _ = M.compute_metrics(references=["no effusion", "effusion"], generated=["no effusion", "edema"],
                            bertscore=None, learned=("chexbert",))
    assert metrics["chexbert_f1"] == 0.5 and "radgraph_f1" not in metrics


# ---- repetition and faithfulness: hand-counted on written reports
def test_repetition_counts_what_repeats_earlier_in_the_same_report():
    from study.evaluation.repetition import repetition

    reports = ["the heart is normal. the heart is normal. the heart is normal.",  # MTL-EQ's habit
               "no pleural effusion. heart size is normal.",
               "lungs are clear", ""]
    out = repetition(reports)
    # 12 words, 9 4-grams: the first 4 are new ("the heart is normal", "heart is normal the",
    # "is normal the heart", "normal the heart is"), the other 5 repeat one of them
    np.testing.assert_allclose(out["repeat_4gram"], [5 / 9, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(out["repeat_sentence"], [2 / 3, 0.0, 0.0, 0.0])  # 2 of 3 sentences repeat


def test_faithfulness_counts_hallucinated_and_missed_findings():
    from study.evaluation.faithfulness import faithfulness

    references = ["no pleural effusion. there is cardiomegaly. possible atelectasis.",
                  "mild pulmonary edema. no consolidation."]
    generated = ["small left pleural effusion. consolidation in the right lower lobe. possible atelectasis.",
                 "the lungs are clear. edema may be present."]
    out = faithfulness(label_reports(references), label_reports(generated))
    # report 1: effusion (negated in the reference) and consolidation (not mentioned) are
    # hallucinated; cardiomegaly is missed; atelectasis uncertain in both counts for neither.
    # report 2: edema is called uncertain, so not missed; nothing asserted, nothing hallucinated.
    assert out["hallucinated"].tolist() == [2, 0] and out["missed"].tolist() == [1, 0]
    assert out["hallucinated_Pleural Effusion"].tolist() == [1, 0] and out["hallucinated_Consolidation"].tolist() == [1, 0]
    assert out["missed_Cardiomegaly"].tolist() == [1, 0] and out["missed_Edema"].tolist() == [0, 0]
    assert out["hallucinated_Atelectasis"].tolist() == [0, 0] and out["missed_Atelectasis"].tolist() == [0, 0]


def test_per_report_measures_reach_the_metrics_and_the_per_sample_table():
    metrics, per = M.compute_metrics(references=["no effusion.", "cardiomegaly."],
                                     generated=["pleural effusion. pleural effusion.", "cardiomegaly."],
                                     bertscore=None)
    assert metrics["hallucinated"] == 0.5 and metrics["missed"] == 0.0 and metrics["repeat_sentence"] == 0.25
    assert per["hallucinated"].tolist() == [1, 0] and per["hallucinated_Pleural Effusion"].tolist() == [1, 0]
