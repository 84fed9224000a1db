"""Import page: upload a file (or name a local file or folder), see what was detected and every problem, then store."""

import pandas as pd
import streamlit as st

from bgcore.data.datasets import format_descriptions, import_path, preview_path, staged_upload
from bgcore.data.ingest import id_from_name
from bgcore.data.schema import DataError

st.title("Import")
if "imp_message" in st.session_state:
    st.success(st.session_state.pop("imp_message"))
formats = format_descriptions()
st.caption("Supported: " + "; ".join(formats.values()) + ". Nothing is stored until the file passes every check "
           "and you press Store.")
left, right = st.columns(2)
source = left.radio("Source", ["Upload a file", "A file or folder on this computer"], key="imp_source",
                    horizontal=True)
fmt = right.selectbox("Format", ["auto", *formats], key="imp_format", format_func=lambda f: "detect automatically"
                      if f == "auto" else f"{formats[f]} ({f})")
patient = right.text_input("Patient id for single-patient files", key="imp_patient",
                           help="Blank: taken from the file, else from its name.").strip() or None
uploaded, path = None, None
if source == "Upload a file":
    uploaded = left.file_uploader("Data file", key="imp_file")
else:
    path = left.text_input("Path", key="imp_path", placeholder="/data/OhioT1DM/559-ws-training.xml").strip() or None
if uploaded is None and path is None:
    st.info("Choose a file to see what it contains.")
    st.stop()


@st.cache_data(max_entries=4, show_spinner="Checking the file ...")
def check_upload(filename: str, data: bytes, fmt: str, patient):
    with staged_upload(filename, data) as staged:
        return preview_path(staged, fmt, patient)


@st.cache_data(max_entries=4, show_spinner="Checking ...", ttl=60)
def check_path(target: str, fmt: str, patient):
    return preview_path(target, fmt, patient)


if uploaded is not None:
    result, origin = check_upload(uploaded.name, uploaded.getvalue(), fmt, patient), uploaded.name
else:
    result, origin = check_path(path, fmt, patient), path

st.subheader("What was found")
if result["report"]:
    st.code("\n".join(result["report"]), language=None)
if result["patients"]:
    st.dataframe(pd.DataFrame(result["patients"]), hide_index=True, width="stretch")
if result["problems"]:
    st.error(f"{len(result['problems'])} problem(s): nothing will be stored until they are fixed.")
    st.dataframe(pd.DataFrame(result["problems"]), hide_index=True, width="stretch")
    st.stop()

st.success(f"{origin}: ready to import.")
cols = st.columns([3, 1])
name = cols[0].text_input("Dataset name", id_from_name(str(origin)), key="imp_name")
replace = cols[1].checkbox("Replace a dataset of that name", key="imp_replace")
if st.button("Store dataset", type="primary", key="imp_store"):
    try:
        if uploaded is not None:
            with staged_upload(uploaded.name, uploaded.getvalue()) as staged:
                dataset, _ = import_path(staged, name, fmt, patient, replace)
        else:
            dataset, _ = import_path(path, name, fmt, patient, replace)
    except DataError as exc:
        st.error(str(exc))
    else:
        st.session_state["dataset_pending"] = dataset.name
        st.session_state["imp_message"] = (f"Stored dataset {dataset.name!r} ({len(dataset.patient_ids)} "
                                           "patient(s)); it is now the active dataset in the sidebar.")
        st.rerun()
