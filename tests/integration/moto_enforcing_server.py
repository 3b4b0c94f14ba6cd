"""moto's server (`python -m moto.server`), run in a process of its own by
itest_kubeconfig.enforcing_moto, with one correction to its signature check.

moto 5.2.5 computes the payload hash of a GET request without a query string (such as EKS's
DescribeCluster, `GET /clusters/<name>`) from the dictionary it falls back to for such requests,
the request's headers (core/responses.py `setup_class`: `querystring.update(headers)`;
iam/access_control.py `_create_aws_request`: `self._body or self._data`, where `self._data`
stands for the parsed form of a query-protocol POST, whose raw body Flask leaves empty), so with
IAM enforcement on, a correctly signed GET is refused with SignatureDoesNotMatch (moto issue 5948
reports the same for S3 GETs). Here a GET is checked against the empty payload the client
signed. The signature is still verified, and which
actions a caller may take is still moto's own policy evaluation.
"""

from moto.iam.access_control import IAMRequestBase
from moto.server import main

_calculate_signature = IAMRequestBase._calculate_signature


def _signature_over_the_signed_payload(self: IAMRequestBase) -> str:
    if self._method == "GET" and not self._body:
        self._data = {}
    return _calculate_signature(self)


IAMRequestBase._calculate_signature = _signature_over_the_signed_payload  # type: ignore[method-assign]

if __name__ == "__main__":
    main()
