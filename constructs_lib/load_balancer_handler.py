"""Lambda handler (inline code, standard library and the runtime's boto3 only): the ARN and
CloudWatch dimension of the load balancer that has a given DNS name, and on request the CIDRs
of its subnets (where an ALB's requests to IP targets come from).

CloudWatch names an NLB by the end of its ARN, `net/<name>/<id>`; the controller gives the
Service only the DNS name. Rather than cut the name out of the DNS name by position (which
depends on how the controller names load balancers), ask ELB which load balancer has it.
"""

import json
import urllib.request


def find(client, dns_name):
    """The load balancer whose DNSName is `dns_name` (any case)."""
    wanted = dns_name.rstrip(".").lower()
    for page in client.get_paginator("describe_load_balancers").paginate():
        for balancer in page["LoadBalancers"]:
            if balancer["DNSName"].lower() == wanted:
                return balancer
    raise LookupError(
        f"no load balancer of this account and region has the DNS name {dns_name}: was its "
        "Service deleted, or is it in another region?"
    )


def handle(event, client, ec2=None):
    """The CloudFormation custom resource protocol: (status, physical id, data, reason)."""
    if event["RequestType"] == "Delete":
        return "SUCCESS", event["PhysicalResourceId"], {}, ""
    properties = event["ResourceProperties"]
    try:
        balancer = find(client, properties["DnsName"])
    except LookupError as error:
        return "FAILED", event.get("PhysicalResourceId", "none"), {}, str(error)
    arn = balancer["LoadBalancerArn"]
    found = arn.split(":loadbalancer/", 1)[1]  # net/<name>/<id>, app/<name>/<id>
    data = {"Dimension": found, "Arn": arn}
    if properties.get("Subnets") == "true":
        ids = [zone["SubnetId"] for zone in balancer["AvailabilityZones"]]
        subnets = ec2.describe_subnets(SubnetIds=ids)["Subnets"]
        data["SubnetCidrs"] = ",".join(sorted(s["CidrBlock"] for s in subnets))
    return "SUCCESS", found, data, ""


def handler(event, context):  # pragma: no cover - the Lambda entry point
    try:
        import boto3

        clients = boto3.client("elbv2"), boto3.client("ec2")
        status, physical_id, data, reason = handle(event, *clients)
    except Exception as error:  # no answer would leave CloudFormation waiting an hour
        status, physical_id, data = "FAILED", event.get("PhysicalResourceId", "none"), {}
        reason = f"{type(error).__name__}: {error}"
    body = {
        "Status": status,
        "Reason": reason or f"see {context.log_stream_name}",
        "PhysicalResourceId": physical_id,
        "StackId": event["StackId"],
        "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
        "Data": data,
    }
    url = event["ResponseURL"]
    if not url.startswith("https://"):
        raise ValueError("CloudFormation's ResponseURL is a presigned HTTPS URL")
    request = urllib.request.Request(  # noqa: S310 (https only, checked above)
        url,
        data=json.dumps(body).encode(),
        method="PUT",
        headers={"Content-Type": ""},
    )
    with urllib.request.urlopen(request, timeout=30):  # noqa: S310 (https only)
        pass
