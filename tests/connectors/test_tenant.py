"""Each connector names the tenant a connection reads, so two directories over one tenant are found."""

from __future__ import annotations

from accessiq.connectors import connector_class


def test_entra_tenant_is_the_tenant_id_on_its_graph_endpoint() -> None:
    entra = connector_class("entra")
    given = entra.tenant({"tenant_id": "Contoso.onmicrosoft.com", "client_id": "a"})
    assert given == entra.tenant({"tenant_id": "contoso.onmicrosoft.com", "graph_url": "https://graph.microsoft.com/"})
    assert given != entra.tenant({"tenant_id": "contoso.onmicrosoft.com", "graph_url": "http://127.0.0.1:9999"})
    assert given != entra.tenant({"tenant_id": "fabrikam.onmicrosoft.com"})


def test_okta_ldap_and_file_tenants() -> None:
    okta = connector_class("okta")
    assert okta.tenant({"org_url": "https://acme.okta.com/"}) == okta.tenant({"org_url": "https://ACME.okta.com"})
    ldap = connector_class("ldap")
    assert ldap.tenant({"url": "ldaps://dc1.corp", "base_dn": "DC=corp"}) == {
        "url": "ldaps://dc1.corp",
        "base_dn": "dc=corp",
    }
    assert connector_class("file").tenant({}) == {}


def test_google_my_customer_is_named_by_the_admins_domain() -> None:
    google = connector_class("google")
    one = google.tenant({"admin_email": "ann@acme.example"})
    assert one == google.tenant({"admin_email": "bob@ACME.example", "customer": "my_customer"})
    assert one != google.tenant({"admin_email": "ann@other.example"})
    assert google.tenant({"admin_email": "ann@acme.example", "customer": "C03az79cb"})["customer"] == "c03az79cb"
