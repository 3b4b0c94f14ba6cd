"""The baseline for bench/synth.py: the smallest CDK app with one stack and one bucket.

Run through the same CLI, Python and jsii as our app, so the ratio isolates what our
deployment (four stacks, a cdk8s chart, layers, assets) costs on top of CDK itself.
"""

import aws_cdk as cdk
from aws_cdk import aws_s3 as s3

app = cdk.App()
stack = cdk.Stack(app, "Baseline")
s3.Bucket(stack, "Bucket")
app.synth()
