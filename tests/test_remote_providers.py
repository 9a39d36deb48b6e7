"""SageMaker and Azure ML, offline: the job specifications checked against each SDK's own objects, the payload and the run
folder through fsspec's memory filesystem, the traversal guard, the errors that name the extra or the setup command, and
no provider SDK imported until that provider is chosen."""
import json, os, subprocess, sys
from dataclasses import asdict
from pathlib import Path
import pytest
from fastcore.test import test_eq as _eq, test_fail as _fail
from cogniverse_ft.core import OrchestrationConfig
from cogniverse_ft.backend import backend_for, receive_run
from cogniverse_ft.remote import (RemoteTrainingBackend, RemoteOptions, RemoteSetupError, job_paths, put_json, get_json, read_run,
                                  remote_payload, main, pick_instance, REMOTE_WORKDIR)

ROLE = "arn:aws:iam::123456789012:role/SageMakerTraining"
S3 = RemoteOptions(storage_uri="s3://acme-ml/cogniverse-ft", role=ROLE, region="eu-west-1")
AZ = RemoteOptions(storage_uri="abfss://training@acmeml.dfs.core.windows.net/cogniverse-ft", compute="a100-cluster")
RECORDS = [{"prompt": f"q{i}", "completion": "search_agent"} for i in range(4)]
pytestmark = pytest.mark.filterwarnings("ignore:.*field should not be instantiated", "ignore:.*experimental class")  # azure-ai-ml's own

NO_AWS = {"AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_EC2_METADATA_DISABLED": "true"}

def cfg(provider, **kw):
    return OrchestrationConfig(tenant_id="acme", project="cogniverse-acme", model_type="llm", agent_type="routing", backend="remote",
                               backend_provider=provider, **kw)

def python(code, env=None):
    "Run `code` in a fresh interpreter (what it imports is its own)."
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AZURE_", "COGNIVERSE_FT_REMOTE", "COGNIVERSE_FT_SAGEMAKER"))}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=base | NO_AWS | (env or {}), timeout=300)

def test_no_provider_sdk_until_chosen():
    "The backend, the orchestrator and even backend_for(sagemaker / azure_ml) import neither SDK nor its filesystem."
    r = python("import sys\nimport cogniverse_ft.backend, cogniverse_ft.orchestrator, cogniverse_ft.remote\n"
               "from cogniverse_ft.core import OrchestrationConfig\nfrom cogniverse_ft.backend import backend_for\n"
               "for p in ('sagemaker', 'azure_ml'): backend_for(OrchestrationConfig(tenant_id='a', project='cogniverse-a', model_type='llm', "
               "agent_type='routing', backend='remote', backend_provider=p))\n"
               "print(sorted({m.split('.')[0] for m in sys.modules} & {'sagemaker', 'azure', 's3fs', 'adlfs'}))")
    assert r.returncode == 0, r.stderr[-3000:]
    _eq(r.stdout.strip().splitlines()[-1], "[]")

def test_backend_for_remote_providers():
    _eq([type(backend_for(cfg(p))).__name__ for p in ("sagemaker", "azure_ml")], ["RemoteTrainingBackend"] * 2)
    _eq([backend_for(cfg(p)).name for p in ("sagemaker", "azure_ml", "modal")], ["sagemaker", "azure_ml", "modal"])

def test_sagemaker_request_passes_the_aws_client():
    "The CreateTrainingJob request goes through a real boto3 client (botocore validates it against the service model), stubbed."
    import boto3
    from botocore.stub import Stubber
    c = cfg("sagemaker", gpu="A10G", gpu_count=4, memory=65536, timeout=5400)
    b = RemoteTrainingBackend("sagemaker", RemoteOptions(**{**asdict(S3), "spot": True}))
    plan = b.plan("sft", c, RECORDS, max_steps=1)
    spec = plan["spec"]
    _eq((spec["ResourceConfig"]["InstanceType"], spec["ResourceConfig"]["InstanceCount"]), ("ml.g5.12xlarge", 1))
    _eq(spec["StoppingCondition"], {"MaxRuntimeInSeconds": 5400, "MaxWaitTimeInSeconds": 10800})
    _eq((spec["RoleArn"], spec["EnableManagedSpotTraining"]), (ROLE, True))
    _eq([(ch["ChannelName"], ch["DataSource"]["S3DataSource"]["S3Uri"]) for ch in spec["InputDataConfig"]],
        [("code", plan["paths"]["code"]), ("payload", plan["paths"]["payload"])])
    cmd = spec["AlgorithmSpecification"]["ContainerArguments"][0]
    assert "pip install -q --no-cache-dir -r requirements.txt" in cmd and f"--output {plan['paths']['run']}" in cmd, cmd
    assert spec["AlgorithmSpecification"]["TrainingImage"].startswith("763104351884.dkr.ecr.eu-west-1.amazonaws.com/pytorch-training:")
    reqs = (Path(plan["code_dir"])/"requirements.txt").read_text().split()
    assert any(r.startswith("s3fs==") for r in reqs) and any(r.startswith("torch==") for r in reqs)
    _eq(plan["payload"]["config"]["output_dir"], f"{REMOTE_WORKDIR}/adapters/acme")
    sm = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="eu-west-1").client("sagemaker")
    with Stubber(sm) as st:
        st.add_response("create_training_job", {"TrainingJobArn": f"arn:aws:sagemaker:eu-west-1:123456789012:training-job/{plan['job']}"}, spec)
        _eq(sm.create_training_job(**spec)["TrainingJobArn"].endswith(plan["job"]), True)
    _eq(pick_instance(cfg("sagemaker"), "sagemaker", "ml.p5.48xlarge"), "ml.p5.48xlarge")

def test_azureml_job_is_a_command_job():
    "The command() job as the SDK serialises it for the service: code, environment, input, output, compute, timeout."
    from azure.ai.ml.entities import Command
    c = cfg("azure_ml", gpu="A100-80GB", gpu_count=2, timeout=7200)
    plan = RemoteTrainingBackend("azure_ml", AZ).plan("dpo", c, [{"prompt": "p", "chosen": "a", "rejected": "b"}], beta=0.2)
    job = plan["spec"]
    assert isinstance(job, Command)
    rest = job._to_job()._to_rest_object().properties
    _eq((rest.compute_id, job.limits.timeout, job.resources.instance_count), ("a100-cluster", 7200, 1))
    _eq(rest.inputs["payload"].uri, plan["paths"]["payload"])
    _eq(rest.outputs["run"].uri, plan["paths"]["run"] + "/")
    assert rest.command.endswith("python -m cogniverse_ft.remote --payload '${{inputs.payload}}' --output '${{outputs.run}}'"), rest.command
    _eq(Path(job.code), Path(plan["code_dir"]))
    pip = job.environment.conda_file["dependencies"][2]["pip"]
    assert any(r.startswith("torch==") for r in pip) and not any(r.startswith("s3fs==") for r in pip)
    _eq((plan["payload"]["method"], plan["payload"]["overrides"]), ("dpo", {"beta": 0.2}))

def test_payload_round_trip_through_fsspec():
    b = RemoteTrainingBackend("sagemaker", RemoteOptions(**{**asdict(S3), "storage_uri": "memory://acme-ml/rt"}))
    plan = b.plan("sft", cfg("sagemaker"), RECORDS, max_steps=2)
    b.upload(plan)
    _eq(get_json(plan["paths"]["payload"]), json.loads(json.dumps(plan["payload"])))
    import fsspec
    fs = fsspec.filesystem("memory")
    assert fs.exists(f"{plan['paths']['code']}/requirements.txt") and fs.exists(f"{plan['paths']['code']}/cogniverse_ft/remote.py")

def test_credentials_stay_out_of_the_job():
    "Keys in the environment are the SDK's business: neither the payload nor the job specification holds them."
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    r = python("import json\nfrom cogniverse_ft.remote import *\nfrom cogniverse_ft.core import OrchestrationConfig\n"
               "c = OrchestrationConfig(tenant_id='acme', project='cogniverse-acme', model_type='llm', agent_type='routing')\n"
               "b = RemoteTrainingBackend('sagemaker')\nb.check(c)\np = b.plan('sft', c, [{'prompt': 'p', 'completion': 'c'}])\n"
               "print(json.dumps({'payload': p['payload'], 'spec': p['spec']}))",
               {"AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY": secret, "AWS_DEFAULT_REGION": "eu-west-1",
                "COGNIVERSE_FT_REMOTE_URI": "s3://acme-ml/jobs", "COGNIVERSE_FT_SAGEMAKER_ROLE": ROLE})
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout.strip().splitlines()[-1]
    assert secret not in out and "AKIAIOSFODNN7EXAMPLE" not in out and secret not in r.stderr
    _eq(json.loads(out)["spec"]["RoleArn"], ROLE)

@pytest.mark.slow
def test_run_folder_round_trip_and_guard(tmp_path, tiny):
    "The container's entry point trains a payload from memory://, stores the run there; it arrives verified, or not at all."
    paths = job_paths("memory://acme-ml/jobs", "cogniverse-ft-acme-sft-00000000")
    p = remote_payload("sft", cfg("sagemaker", base_model=tiny), RECORDS, max_steps=1, verbose=False)
    p["config"]["output_dir"] = str(tmp_path/"container")
    put_json(p, paths["payload"])
    _eq(main(["--payload", paths["payload"], "--output", paths["run"]]), 0)
    res = receive_run(read_run(paths["run"]), tmp_path/"local")
    _eq((res.metrics["train_steps"], Path(res.adapter_path).parent), (1, tmp_path/"local"))
    sent = next(d for d in (tmp_path/"container").iterdir() if not d.name.startswith("."))
    _eq(sorted(f.name for f in Path(res.adapter_path).iterdir()), sorted(f.name for f in sent.iterdir()))
    import fsspec
    fs = fsspec.filesystem("memory")
    fs.pipe(f"{paths['run']}/files/adapter_config.json", b"{}")
    _fail(lambda: receive_run(read_run(paths["run"]), tmp_path/"local"), contains="arrived corrupt")
    header = next(read_run(paths["run"]))
    _fail(lambda: receive_run([header, {"event": "chunk", "path": "../../evil", "data": b"x"}, {"event": "end"}], tmp_path/"local"),
          contains="resolves outside")
    _eq(len(list((tmp_path/"local").iterdir())), 1)
    _fail(lambda: list(read_run(paths["root"] + "/missing")), contains="the job failed, or has not finished")
    _eq(main(["--payload", paths["root"] + "/none.json", "--output", paths["run"]]), 2)

@pytest.mark.parametrize("provider,module,extra", [("sagemaker", "boto3", "sagemaker"), ("azure_ml", "azure.ai.ml", "azureml")])
def test_missing_sdk_names_the_extra(provider, module, extra):
    r = python(f"import sys\nsys.modules[{module!r}] = None\nfrom cogniverse_ft.remote import *\n"
               f"from cogniverse_ft.core import OrchestrationConfig\n"
               f"c = OrchestrationConfig(tenant_id='a', project='cogniverse-a', model_type='llm', agent_type='routing')\n"
               f"b = RemoteTrainingBackend({provider!r}, RemoteOptions(storage_uri={(S3 if provider == 'sagemaker' else AZ).storage_uri!r}, role='r'))\n"
               "try: b.check(c)\nexcept RemoteSetupError as e: print(e)")
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().endswith(f"pip install 'cogniverse_ft[{extra}]'"), r.stdout

def test_missing_credentials_name_the_setup_command():
    r = python("from cogniverse_ft.remote import *\nfrom cogniverse_ft.core import OrchestrationConfig\n"
               "c = OrchestrationConfig(tenant_id='a', project='cogniverse-a', model_type='llm', agent_type='routing')\n"
               "try: RemoteTrainingBackend('sagemaker', RemoteOptions(storage_uri='s3://b/p', role='r', region='eu-west-1')).check(c)\n"
               "except RemoteSetupError as e: print(e)\n"
               "from azure.identity import EnvironmentCredential\n"
               "try: RemoteTrainingBackend('azure_ml', RemoteOptions(storage_uri='abfss://c@a.dfs.core.windows.net/p')).check(c, EnvironmentCredential())\n"
               "except RemoteSetupError as e: print(e)")
    assert r.returncode == 0, r.stderr[-3000:]
    aws, az = r.stdout.strip().splitlines()[-2:]
    assert "AWS credentials not found" in aws and "run `aws configure`" in aws, aws
    assert "Azure credentials not found" in az and "run `az login`" in az, az
    _fail(lambda: RemoteTrainingBackend("sagemaker", RemoteOptions()).check(cfg("sagemaker")), contains="set COGNIVERSE_FT_REMOTE_URI")
    _fail(lambda: RemoteTrainingBackend("modal"), contains="Unknown backend_provider 'modal'")
