"""lm-eval loads the functions its task YAML names from this file; they live in c2_course_correct.harnesses."""
from c2_course_correct.harnesses import lm_eval_dataset, lm_eval_results, mean_of_present  # noqa: F401
