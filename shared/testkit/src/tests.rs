use super::*;

#[test]
fn every_provider_has_a_kit_and_every_kit_a_provider() {
    assert_eq!(Kit::all().len(), webhook_core::providers::all().len());
    for (name, _) in DATA {
        assert!(
            webhook_core::providers::by_name(name).is_some(),
            "data/{name}.json names no provider"
        );
    }
}

#[test]
fn every_case_builds_a_request_with_its_tenant_and_secret() {
    for kit in Kit::all() {
        for case in kit.cases() {
            let request = kit.request(case);
            assert!(
                request.uri().to_string().contains(kit.name()),
                "{}",
                case.name
            );
        }
    }
}

#[test]
fn every_expected_call_is_a_route_of_the_documented_api() {
    for kit in Kit::all() {
        for case in kit.cases() {
            let Some(Expect::Calls(calls)) = &case.process else {
                continue;
            };
            for call in calls {
                let (path, query) = call.path.split_once('?').unwrap_or((&call.path, ""));
                assert!(
                    kit.api().route(&call.method, path, query).is_some(),
                    "{}/{}: {call} is no route of the kit's API",
                    kit.name(),
                    case.name
                );
            }
        }
    }
}

#[test]
fn unique_deliveries_differ_and_scaled_tenants_build() {
    for kit in Kit::all() {
        assert_ne!(kit.unique_body(1), kit.unique_body(2), "{}", kit.name());
        serde_json::from_str::<Value>(&kit.unique_body(7)).expect("unique body is JSON");
        let tenants = kit.scaled_tenants(3, Lookup::Normal).unwrap();
        assert_eq!(tenants.len(), 3);
        let worst = kit.scaled_tenants(3, Lookup::WorstCase);
        assert_eq!(
            worst.is_some(),
            kit.worst_case().is_some(),
            "{}",
            kit.name()
        );
    }
}

/// Headers every API request of the first demo tenant must carry, a token exchanged first.
fn signed_in(double: &ApiDouble, kit: &Kit) -> http::HeaderMap {
    let tenants = kit.tenants("http://unused");
    let api = tenants.iter().next().unwrap().api.clone().unwrap();
    let settings = |name: &str| match name {
        "api_key" => api.api_key.as_ref().map(|s| s.expose().to_string()),
        "app_id" => api.app_id.clone(),
        "app_secret" => api.app_secret.as_ref().map(|s| s.expose().to_string()),
        "company_id" => api.company_id.clone(),
        _ => None,
    };
    let token = kit.api().token.as_ref().map(|exchange| {
        let body = template::fill_value(&exchange.body, &settings).to_string();
        let answer = double.answer(
            kit.name(),
            &exchange.method,
            &exchange.path,
            "",
            &json_content(),
            body.as_bytes(),
        );
        assert_eq!(answer.status, 200, "{}: {answer:?}", kit.name());
        answer.body["token"].as_str().unwrap().to_string()
    });
    let value = |name: &str| match name {
        "token" => token.clone(),
        other => settings(other),
    };
    kit.api()
        .headers
        .iter()
        .map(|(name, template)| {
            let value = template::fill(template, value).unwrap();
            (name.parse().unwrap(), value.parse().unwrap())
        })
        .collect()
}

/// A request path and query that the route matches, each placeholder filled with `x1`.
fn concrete(route: &Route) -> (String, String) {
    let path = route.path.replace(['{', '}'], "");
    let query: Vec<String> = route
        .query
        .keys()
        .map(|name| format!("{name}=x1"))
        .collect();
    (path, query.join("&"))
}

#[test]
fn the_double_answers_documented_routes_and_refuses_the_rest() {
    let double = ApiDouble::strict();
    for kit in Kit::all() {
        let headers = signed_in(&double, &kit);
        let route = &kit.api().routes[0];
        let (path, query) = concrete(route);
        let answer = |headers: &http::HeaderMap, path: &str, query: &str| {
            double
                .answer(kit.name(), &route.method, path, query, headers, b"")
                .status
        };
        assert_eq!(answer(&headers, &path, &query), 200, "{}", kit.name());
        assert_eq!(answer(&http::HeaderMap::new(), &path, &query), 401);
        let mut wrong = headers.clone();
        for value in wrong.values_mut() {
            *value = "nope".parse().unwrap();
        }
        assert_eq!(answer(&wrong, &path, &query), 401, "{}", kit.name());
        assert_eq!(answer(&headers, &format!("{path}/more"), &query), 404);
        assert_eq!(answer(&headers, &path, "unexpected=1"), 404);
    }
}

fn json_content() -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    headers.insert("content-type", "application/json".parse().unwrap());
    headers
}

#[test]
fn a_parameter_given_twice_is_not_the_documented_request() {
    let double = ApiDouble::strict();
    for kit in Kit::all() {
        let headers = signed_in(&double, &kit);
        for route in kit
            .api()
            .routes
            .iter()
            .filter(|route| !route.query.is_empty())
        {
            let (path, query) = concrete(route);
            let twice = format!("{query}&{query}");
            let status = double
                .answer(kit.name(), &route.method, &path, &twice, &headers, b"")
                .status;
            assert_eq!(status, 404, "{}: {path}?{twice}", kit.name());
        }
    }
}

#[test]
fn tokens_are_exchanged_as_json_and_refused_once_revoked() {
    let double = ApiDouble::strict();
    let kits: Vec<Kit> = Kit::all()
        .into_iter()
        .filter(|kit| kit.api().token.is_some())
        .collect();
    assert!(!kits.is_empty(), "some kit's API exchanges tokens");
    for kit in kits {
        let exchange = kit.api().token.as_ref().unwrap();
        let headers = signed_in(&double, &kit);
        let route = &kit.api().routes[0];
        let (path, query) = concrete(route);
        let answer = |headers: &http::HeaderMap| {
            double
                .answer(kit.name(), &route.method, &path, &query, headers, b"")
                .status
        };
        assert_eq!(answer(&headers), 200, "{}", kit.name());
        double.revoke_tokens();
        assert_eq!(answer(&headers), 401, "{}: a revoked token", kit.name());
        let form = double.answer(
            kit.name(),
            &exchange.method,
            &exchange.path,
            "",
            &http::HeaderMap::new(),
            b"{}",
        );
        assert_eq!(form.status, 415, "{}: no JSON content type", kit.name());
    }
}

#[test]
fn a_double_trusting_nobody_refuses_the_demo_tenants() {
    let double = ApiDouble::trusting_nobody();
    let strict = ApiDouble::strict();
    for kit in Kit::all()
        .into_iter()
        .filter(|kit| kit.api().token.is_none())
    {
        let route = &kit.api().routes[0];
        let (path, query) = concrete(route);
        let headers = signed_in(&strict, &kit);
        let status = double
            .answer(kit.name(), &route.method, &path, &query, &headers, b"")
            .status;
        assert_eq!(status, 401, "{}", kit.name());
    }
}
