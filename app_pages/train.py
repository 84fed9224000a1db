"""Train page: choose patients, goal and family, launch in the background, follow the jobs."""

import json

import streamlit as st

from app_pages._shared import dataset as shared_dataset
from bgcore.data.datasets import list_datasets
from bgcore.models.registry import describe, family_details
from bgcore.store import list_runs
from bgcore.training.jobs import get_manager

name = st.session_state.get("dataset", "virtual")
dataset = shared_dataset(name)
manager = get_manager()

st.title("Train")
families = describe()
available = [f["name"] for f in families if f["available"]]
left, right = st.columns(2)
groups = sorted(dataset.patients["age_group"].unique())
chosen_groups = left.multiselect("Select all patients of a group", groups, key="train_groups")
by_group = dataset.patients[dataset.patients["age_group"].isin(chosen_groups)]["patient_id"].tolist()
patients = left.multiselect("Patients", dataset.patient_ids, default=by_group or dataset.patient_ids[:1],
                            key="train_patients")
goal = right.selectbox("Training goal", ["single", "multi", "multi_holdout", "finetune"], key="train_goal",
                       help="single: one model per patient; multi: one model for all; multi_holdout: scored on "
                            "patients never seen in training; finetune: adapt a finished multi-patient run")
family = right.selectbox("Model family", available, index=available.index("lightgbm") if "lightgbm" in available else 0,
                         key="train_family")
info = next(f for f in families if f["name"] == family)
details = family_details(family)
right.caption(f"{info['family']} · {info['scope']} · covariates: {info['covariates'] or 'none'} · {info['summary']}")
if details["weights"]:
    right.caption(f"Weights: {details['weights']}")
if details["tags"].get("cost"):
    right.caption(f"Cost: {details['tags']['cost']}")
if details["tags"]["remote"]:
    right.warning("This family sends each forecast origin's CGM to a hosted service.")
unavailable = [f for f in families if not f["available"]]
if unavailable:
    with right.expander(f"{len(unavailable)} families cannot run here yet"):
        for f in unavailable:
            st.caption(f"{f['name']}: {f['reason']}")
parent = None
if goal == "finetune":
    parents = [r["run_id"] for r in list_runs(name) if r["goal"] == "multi" and r["model"] == family]
    if not parents:
        st.info(f"Fine-tuning starts from a finished multi-patient {family} run: train one first.")
    parent = st.selectbox("Parent run", parents, key="train_parent") if parents else None
params_text = st.text_input("Parameters (JSON; lists make a grid, run as a sweep)", "{}", key="train_params",
                            help="Defaults: " + json.dumps(details["defaults"], default=str))
if details["grid"]:
    st.caption("Suggested grid for this family (paste to sweep): `" + json.dumps(details["grid"]) + "`")

if st.button("Launch", type="primary", disabled=not patients or (goal == "finetune" and parent is None)):
    try:
        params = json.loads(params_text or "{}")
    except json.JSONDecodeError as exc:
        st.error(f"Parameters are not valid JSON: {exc.msg} (column {exc.colno})")
    else:
        grid = {k: v for k, v in params.items() if isinstance(v, list)}
        if grid:
            job = manager.submit_sweep(goal, [family], grid=grid, patient_groups=[patients], dataset=name)
        else:
            job = manager.submit_train(goal, family, params=params, patients=patients, dataset=name, parent=parent)
        st.session_state["last_job"] = job
        st.success(f"Queued job {job}")


with st.expander("Pretrain a diabetes foundation model (DFM) from scratch"):
    st.caption("Simulates a separate virtual population (never the cohort's patients), trains a Chronos-2 "
               "architecture on it in the background and stores it in cache/weights/NAME; then train the dfm "
               'family with {"weights": "NAME"}. About 0.3 s per step for the small size on this machine.')
    cols = st.columns(4)
    pre_name = cols[0].text_input("Name", "dfm-mine", key="pre_name")
    pre_size = cols[1].selectbox("Size", ["tiny", "small", "base"], index=1, key="pre_size")
    pre_steps = cols[2].number_input("Steps", 10, 20000, 500, step=100, key="pre_steps")
    pre_patients = cols[3].number_input("Virtual patients", 2, 1000, 100, step=10, key="pre_patients")
    imported = [d["name"] for d in list_datasets() if d["name"] != "virtual"]
    pre_datasets = st.multiselect("Add the train parts of imported datasets", imported, key="pre_datasets",
                                  help="Only the train part of each patient is used, never validation or test.")
    if st.button("Pretrain", key="pre_launch"):
        try:
            job = manager.submit_pretrain(pre_name, size=pre_size, steps=int(pre_steps), n_patients=int(pre_patients),
                                          datasets=list(pre_datasets))
        except ValueError as exc:
            st.error(str(exc))
        else:
            st.success(f"Queued job {job}")


@st.fragment(run_every=2)
def job_panel():
    jobs = [j for j in manager.jobs() if j["spec"].get("dataset") in (name, None)][-10:][::-1]
    if not jobs:
        st.caption("No jobs yet: choose patients and a family, then Launch.")
        return
    for job in jobs:
        spec = job["spec"]
        what = spec.get("family") or ", ".join(spec.get("families", []))
        with st.container(border=True):
            cols = st.columns([4, 1])
            cols[0].markdown(f"**{job['kind']} · {spec.get('goal', '')} · {what}** — {job['status']} "
                             f"({job['elapsed_s']:.0f} s)")
            if job["status"] in ("queued", "running"):
                eta = job["eta_s"]
                cols[0].progress(min(job["progress"], 1.0), text=job["message"] + (f" · about {eta:.0f} s left"
                                                                                     if eta else ""))
                if cols[1].button("Cancel", key=f"cancel_{job['job_id']}"):
                    manager.cancel(job["job_id"])
            elif job["status"] in ("failed", "partial", "cancelled", "interrupted"):
                cols[0].caption((job["error"] or job["message"] or "").splitlines()[0][:300])
            else:
                cols[0].caption(job["message"])


st.subheader("Jobs")
job_panel()
