"""Every ``fmnist.*`` tag and run param a step writes and a reader reads, by name: the one place they are spelled.

Run tags unless said otherwise; ``tags.<name>`` / ``params.<name>`` in ``mlflow.search_runs`` filters and
columns (``tag_col``, ``param_col``, ``metric_col`` spell those).
"""

TAG_PREFIX = "fmnist."

# every run (fmnist.tracking.lifecycle)
STEP_TAG = "fmnist.step"  # which step (extract, classify, ..., study, report): what readers filter on
VERSION_TAG = "fmnist.version"
PID_TAG = "fmnist.pid"  # with HOST_TAG: a later command marks the run KILLED when that process is gone
HOST_TAG = "fmnist.host"
GIT_COMMIT_TAG = "fmnist.git_commit"
NODE_ID_TAG = "fmnist.node_id"  # a Ray worker's node
EXECUTOR_TAG = "fmnist.executor"
ERROR_TAG = "fmnist.error"  # why a run ended FAILED or KILLED

# the step shape (fmnist.steps.base)
CACHE_KEY_TAG = "fmnist.cache_key"  # tagged last: a run that died before is never reused
ARTIFACTS_TAG = "fmnist.artifacts_sha256"  # JSON {artifact path: sha256} of what a reuse must verify
ARTIFACT_SHA_TAG = "fmnist.artifact_sha256"  # an extract run's features.npz
REUSED_TAG = "fmnist.reused_run_id"  # on mlflow run's run when the step was cached
CACHE_HIT_TAG = "fmnist.cache_hit"
PARAMS_TAG = "fmnist.params_json"  # every field of the step's Params: what `fmnist rerun` runs again
CODE_TAG = "fmnist.code_version"  # the code version in the key
ENV_TAG = "fmnist.environment"  # library versions, device, CPU (fmnist.envinfo)
RERUN_TAG = "fmnist.rerun_of"
DATA_DIGEST_TAG = "fmnist.data_digest"
DATA_SOURCE_TAG = "fmnist.data_source"

# extract, classify, visualize, finetune
FEATURE_TAG = "fmnist.feature"
FEATURE_LABEL_TAG = "fmnist.feature_label"  # how tables name the feature (e.g. "resnet18 (random init)")
METHOD_TAG = "fmnist.method"
EXTRACT_RUN_TAG = "fmnist.extract_run_id"
FEATURE_CACHED_TAG = "fmnist.feature_cached"
MODEL_TAG = "fmnist.model"  # a classify run's model; a registered version's model or mode
CI_METHOD_TAG = "fmnist.ci_method"
IMAGE_MODEL_ID_TAG = "fmnist.image_model_id"
WEIGHTS_USED_TAG = "fmnist.weights_used"
RESUME_KEY_TAG = "fmnist.resume_key"  # identical params + data + code: an unfinished run with it may resume
CHECKPOINT_TAG = "fmnist.checkpoint_dir"
RESUMED_RUN_TAG = "fmnist.resumed_run_id"
RESUMED_AT_EPOCH_TAG = "fmnist.resumed_at_epoch"
RESUME_DEVICE_TAG = "fmnist.resume_device"

# shift (fmnist.steps.shift)
SCORED_RUN_TAG = "fmnist.scored_run"  # the classify or finetune run whose model a shift run measured

# parents: grids, the study, the search, the report
FAILED_STEPS_TAG = "fmnist.failed_steps"
REGISTERED_TAG = "fmnist.registered"
PROFILE_DOC_TAG = "fmnist.profile_doc"
REPORT_REUSED_TAG = "fmnist.report_reused_run_id"
SEARCH_BEST_TAG = "fmnist.search_best"
SEARCH_CHOSEN_TAG = "fmnist.search_chosen"

# registered model versions (fmnist.steps.register)
RUN_ID_TAG = "fmnist.run_id"
TEST_ACCURACY_TAG = "fmnist.test_accuracy"
TEST_ACCURACY_CI_TAG = "fmnist.test_accuracy_ci"
N_TEST_TAG = "fmnist.n_test"
DATASET_TAG = "fmnist.dataset"
SPLIT_TAG = "fmnist.test_split"  # the digest of the test split the version was scored on
COMPARED_TAG = "fmnist.compared_on"  # test images shared with the champion it was compared with
COMPARED_WITH_TAG = "fmnist.compared_with"
PROMOTION_TAG = "fmnist.promotion"  # why it is or is not the champion
P_VALUE_TAG = "fmnist.p_value"

# an image model's metadata (fmnist.tracking.records)
INPUT_META = "fmnist.input"
CLASSES_META = "fmnist.classes"
PROBABILITIES_META = "fmnist.probabilities"

# run params a step writes (its ``run_params``) and a reader filters or tabulates on
DATASET_PARAM = "dataset"
SUBSET_PARAM = "subset"  # "all" or the sample size
SEED_PARAM = "seed"
FEATURE_PARAM = "feature"  # extract, classify, visualize
MODEL_PARAM = "model"  # classify
HP_PARAM_PREFIX = "hp_"  # classify: a tuned hyper-parameter's chosen value, hp_<name>
METHOD_PARAM = "method"  # visualize
N_SAMPLES_PARAM = "n_samples"  # visualize
MODE_PARAM = "mode"  # finetune
WEIGHTS_USED_PARAM = "weights_used"  # finetune: the weights as they resolved (a label)
EPOCHS_PARAM = "epochs"  # finetune
IMAGE_SIZE_PARAM = "image_size"  # finetune
SHIFT_N_PARAM = "shift_n"  # shift: the test images scored under each transformation
KINDS_PARAM = "kinds"  # shift: the kinds of transformation
SCORED_STEP_PARAM = "scored_step"  # shift: classify or finetune, the step of the model measured
WEIGHTS_PARAM = "weights"  # finetune: the weights asked for (WEIGHTS_USED_PARAM: as they resolved)
N_FIT_PARAM = "n_fit"  # scatnet-search candidates
N_VAL_PARAM = "n_val"


def param_col(name: str) -> str:
    """A param's column in ``mlflow.search_runs`` (and its name in a filter)."""
    return f"params.{name}"


def tag_col(name: str) -> str:
    return f"tags.{name}"


def metric_col(name: str) -> str:
    return f"metrics.{name}"
