//! Simulator routes beyond the client's core: signed backup downloads with Range, the
//! platform health check, organization tags, domains, and identical reads shared in flight.

use serde_json::{Value, json};
use tb_operations::api::{Repeat, wire};
use tb_simulator::Knobs;

use crate::support::sim::{builtin, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_download_with_range_and_signatures_are_checked() {
    let (sim, client) = start(&builtin(), Knobs::default()).await;
    let site = client.site_id("acme-web").await.unwrap().unwrap();
    let catalog = client.backup_catalog(&site, "live").await.unwrap();
    let (_, entry) = catalog.0.iter().find(|(k, e)| k.ends_with("_files") && e.is_finished()).unwrap();
    let folder = entry.folder.clone().unwrap();
    let token: wire::S3Token = client
        .send(
            reqwest::Method::POST,
            &["sites", &site, "environments", "live", "backups", "catalog", &folder, "files", "s3token"],
            &[],
            Some(&json!({"method": "get"})),
            Repeat::Safe,
        )
        .await
        .unwrap()
        .json("s3token")
        .unwrap();
    let url = token.url.expose().to_owned();
    assert!(url.contains(entry.filename.as_deref().unwrap()));
    let http = crate::support::http_client();
    let whole = http.get(&url).send().await.unwrap();
    assert_eq!(whole.status(), 200);
    let whole = whole.bytes().await.unwrap();
    assert_eq!(whole.len() as u64, entry.size.unwrap(), "the catalog's size is the file's");
    let tail = http.get(&url).header("Range", "bytes=1000-").send().await.unwrap();
    assert_eq!(tail.status(), 206);
    assert_eq!(
        tail.headers()["content-range"].to_str().unwrap(),
        format!("bytes 1000-{}/{}", whole.len() - 1, whole.len())
    );
    assert_eq!(tail.bytes().await.unwrap(), whole.slice(1000..));
    let tampered = url.replace("Signature=", "Signature=0");
    assert_eq!(http.get(&tampered).send().await.unwrap().status(), 403);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sites_answer_https_under_their_own_names_and_the_health_check() {
    let (sim, client) = start(&builtin(), Knobs::default()).await;
    let site = client.site_id("acme-web").await.unwrap().unwrap();
    let domains = client.domains(&site, "dev").await.unwrap();
    let platform = domains.iter().rev().find(|d| d.kind.as_deref() == Some("platform")).unwrap();
    assert_eq!(platform.id, "dev-acme-web.pantheonsite.io");
    // A client that trusts the simulator's authority and sends the names to its address.
    let ca = reqwest::Certificate::from_pem(sim.sites().ca_pem.as_bytes()).unwrap();
    let _provider = rustls::crypto::ring::default_provider().install_default();
    let trusting = reqwest::Client::builder()
        .tls_certs_only([ca])
        .resolve("dev-acme-web.pantheonsite.io", sim.sites().addr)
        .resolve("dev-nope.pantheonsite.io", sim.sites().addr)
        .build()
        .unwrap();
    let reply = trusting.get("https://dev-acme-web.pantheonsite.io/pantheon_healthcheck").send().await.unwrap();
    assert_eq!(reply.status(), 200);
    assert!(reply.headers().contains_key("x-pantheon-styx-hostname"));
    assert_eq!(reply.text().await.unwrap(), "OK");
    let page = trusting.get("https://dev-acme-web.pantheonsite.io/").send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Welcome to"));
    let unknown = trusting.get("https://dev-nope.pantheonsite.io/").send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    // A client that trusts only the public authorities refuses the simulator's certificate.
    let refused = reqwest::Client::builder()
        .resolve("dev-acme-web.pantheonsite.io", sim.sites().addr)
        .build()
        .unwrap()
        .get("https://dev-acme-web.pantheonsite.io/")
        .send()
        .await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(sim.stop().await.site_requests, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_and_domains_change_the_world_at_once() {
    let (sim, client) = start(&builtin(), Knobs::default()).await;
    let site = client.site_id("acme-web").await.unwrap().unwrap();
    let orgs = client.user_orgs().await.unwrap();
    let org = &orgs
        .iter()
        .find(|m| m.organization.profile.as_ref().and_then(|p| p.machine_name.as_deref()) == Some("acme-agency"))
        .unwrap()
        .organization
        .id;
    let tags_of = |list: &[wire::OrgSiteMembership]| list.iter().find(|m| m.id == site).unwrap().tags.clone();
    let reply = client
        .send(
            reqwest::Method::PUT,
            &["organizations", org, "tags"],
            &[],
            Some(&json!({"q4": {"sites": [site]}})),
            Repeat::OnlyIfRefused,
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    assert!(reply.body.is_empty(), "an empty 200, as recorded");
    assert!(tags_of(&client.org_sites(org).await.unwrap()).contains(&"q4".to_owned()));
    client
        .send(
            reqwest::Method::DELETE,
            &["organizations", org, "tags", "q4", "sites"],
            &[("entity", &site)],
            None,
            Repeat::OnlyIfRefused,
        )
        .await
        .unwrap();
    assert!(!tags_of(&client.org_sites(org).await.unwrap()).contains(&"q4".to_owned()));

    // Domains: added to live, refused on test while live has it, removed.
    let path = ["sites", site.as_str(), "environments", "live", "domains", "shop.example.com"];
    let added = client.send(reqwest::Method::PUT, &path, &[], None, Repeat::OnlyIfRefused).await.unwrap();
    assert_eq!(added.json::<Value>("put").unwrap(), json!("Ok"));
    assert!(client.domains(&site, "live").await.unwrap().iter().any(|d| d.id == "shop.example.com"));
    let on_test = ["sites", site.as_str(), "environments", "test", "domains", "shop.example.com"];
    let err = client.send(reqwest::Method::PUT, &on_test, &[], None, Repeat::OnlyIfRefused).await.unwrap_err();
    assert_eq!(err.status(), Some(409), "{err}");
    client.send(reqwest::Method::DELETE, &path, &[], None, Repeat::OnlyIfRefused).await.unwrap();
    let err = client.send(reqwest::Method::DELETE, &path, &[], None, Repeat::OnlyIfRefused).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_reads_in_flight_are_sent_once() {
    let knobs = Knobs { latency: tb_simulator::knobs::Latency { min: 0.3, max: 0.3 }, ..Knobs::default() };
    let (sim, client) = start(&builtin(), knobs).await;
    let site = client.site_id("acme-web").await.unwrap().unwrap();
    let reads: Vec<_> = (0..20)
        .map(|_| {
            let client = client.clone();
            let site = site.clone();
            tokio::spawn(async move { client.environments(&site).await })
        })
        .collect();
    for read in reads {
        assert!(read.await.unwrap().unwrap().contains_key("live"));
    }
    let stats = sim.stop().await;
    assert_eq!(stats.count("GET sites/{site}/environments"), 1, "{stats:?}");
}
