"""Single sign-on for browsers through an ALB whose listener runs the OIDC action.

The ALB signs a person in at the IdP (Entra ID, Okta, Google, Cognito...) and adds to each
request it forwards the user's claims as a JWT signed with ES256 by AWS, in the header
x-amzn-oidc-data; the token's `signer` is the ALB's ARN, its `kid` names the public key,
published at https://public-keys.auth.elb.<region>.amazonaws.com/<kid> (Elastic Load Balancing
docs, "User claims encoding and signature verification":
https://docs.aws.amazon.com/elasticloadbalancing/latest/application/listener-authenticate-users.html#user-claims-encoding).

- token.py: the header parsed and checked (signer, expiry, issuer, client, ES256 signature);
- keys.py: the ALB's public keys, fetched by key ID, bounded and cached;
- sign_in.py: a verified token to an MLflow username, the user created or brought in line with
  the IdP's admin group, both remembered for a while;
- gate.py: the guard's side (before MLflow reads a request: a valid token is a login);
- mlflow_auth.py: MLflow's side (basic-auth's `authorization_function`).

A request without the header is left to MLflow's own basic auth, unchanged.
"""

HEADER = "x-amzn-oidc-data"
"""The ALB's signed user claims."""
AUTHORIZATION_FUNCTION = "mlflow_launcher.sso.mlflow_auth:authenticate"
"""MLflow basic-auth's `authorization_function` with single sign-on on (auth.write_config)."""

HEADER_BYTES = 96 * 1024
"""What a server process accepts of a request's line and headers with single sign-on on
(uvicorn's h11_max_incomplete_event_size; 16 KiB by default). The ALB forwards up to 64K of a
client's headers (ELB docs, "Quotas for your Application Load Balancers", HTTP headers) and
adds its own: the claims token, the IdP's access token (together up to 11K bytes before base64,
"Authentication flow") and X-Forwarded-*. At 16 KiB a user with many groups or a long access
token would get uvicorn's 400 instead of MLflow."""
