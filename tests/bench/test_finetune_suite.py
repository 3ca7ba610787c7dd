"""The finetune benchmark's explanation of its MFU: a real profile of LoRA training steps."""

from bench.finetune_suite import _why, markdown, where_time_goes
from finetune.presets import preset


def test_a_profiled_training_step_is_split_into_matmuls_and_the_rest(tmp_path):
    from rag.settings import Settings

    run = preset("cpu-quick").override(batch_size=1)
    where = where_time_goes(Settings(), run, seq_len=32, steps=1)
    assert where["batch"] == 1 and where["seq_len"] == 32 and where["seconds_per_step"] > 0
    assert 0.05 < where["matmul_share"] < 1 and 0 <= where["attention_share"] < 1
    shares = [o["share"] for o in where["top_other_ops"]]
    assert shares == sorted(shares, reverse=True) and where["matmul_share"] + sum(shares) <= 1.001
    assert all(o["op"] not in ("aten::mm", "aten::addmm") for o in where["top_other_ops"])

    result = {"steps": 4, "trainable_parameters": 10, "tokens_per_s": 100.0, "flops_per_token": 1e9,
              "matmul_peak_gflops": 400.0, "mfu": 0.25, "mfu_target": 0.40, "base_eval_loss": 0.5,
              "final_eval_loss": 0.4, "where_time_goes": where}
    why = "\n".join(_why(result))
    assert "misses 40% by 15 points" in why and f"{where['matmul_share']:.0%} of the CPU time" in why
    assert why in "\n".join(markdown(result))
    assert _why({**result, "mfu": 0.45}) == [] and _why({**result, "where_time_goes": None}) == []
