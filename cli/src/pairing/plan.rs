//! The plan of initial matching (`pairing.rs`): which records share a key, compared in one
//! normalised form on both sides.

use std::collections::{BTreeMap, BTreeSet};

use relay_crm::CrmObject;

/// The HubSpot property and the Attio attribute a CRM object is paired by.
pub fn matching_key(object: CrmObject) -> Option<(&'static str, &'static str)> {
    match object {
        CrmObject::Contacts => Some(("email", "email_addresses")),
        CrmObject::Companies => Some(("domain", "domains")),
        _ => None,
    }
}

/// An email or domain as compared: both services compare them without case, and a domain
/// by its host alone ([`domain_key`]).
pub fn key(object: CrmObject, text: &str) -> Option<String> {
    let lower = text.trim().to_ascii_lowercase();
    let key = match object {
        CrmObject::Companies => domain_key(&lower),
        _ => lower,
    };
    (!key.is_empty()).then_some(key)
}

/// A (lower-case) domain as both sides are compared by: the host without scheme, user,
/// port, path, query, trailing dot or leading `www.`. Why: HubSpot's company `domain` is
/// free text that users and imports fill with `www.acme.com` or `https://acme.com/`, while
/// Attio stores domains, not URLs ("Any inputted values will have paths and query parameters
/// trimmed", <https://docs.attio.com/docs/attribute-types/attribute-types-domain>). Keys
/// compared as typed would miss the pair and make a duplicate on each side, cross-linked.
fn domain_key(text: &str) -> String {
    let rest = text.split_once("://").map_or(text, |(_, rest)| rest);
    let rest = rest.trim_start_matches('/');
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = host
        .split(':')
        .next()
        .unwrap_or_default()
        .trim_end_matches('.');
    host.strip_prefix("www.").unwrap_or(host).to_owned()
}

/// One side's record as the plan sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Side {
    pub id: String,
    pub keys: Vec<String>,
}

/// Why a group could not be matched. Nothing is written for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unmatched {
    /// A record without an email or domain.
    NoKey {
        attio: Option<String>,
        hubspot: Option<String>,
    },
    /// Several records on one side (or both) share keys: which pairs with which is a guess.
    Several {
        keys: Vec<String>,
        attio: Vec<String>,
        hubspot: Vec<String>,
    },
    /// The key is on a HubSpot object already linked to another Attio record.
    Taken {
        keys: Vec<String>,
        attio: Vec<String>,
        hubspot: Vec<String>,
    },
}

/// What initial matching will do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// (Attio record id, HubSpot id).
    pub pairs: Vec<(String, String)>,
    pub attio_only: Vec<String>,
    pub hubspot_only: Vec<String>,
    pub unmatched: Vec<Unmatched>,
    /// HubSpot objects that already carry an `attio_record_id`.
    pub already_linked: usize,
    /// (Attio record id, HubSpot id): linked objects whose id mapping is missing — an earlier
    /// run stopped between the two writes — to be stored now.
    pub repairs: Vec<(String, String)>,
}

/// Pairs `attio` records with `hubspot` objects by shared keys. `linked`: the keys of HubSpot
/// objects that already carry an `attio_record_id` (left out of `hubspot`), and the Attio ids
/// they name (left out of the plan).
pub fn plan(
    attio: &[Side],
    hubspot: &[Side],
    linked_keys: &BTreeSet<String>,
    linked_ids: &BTreeSet<String>,
) -> Plan {
    let mut plan = Plan::default();
    // Union-find over the nodes: Attio records 0..a, HubSpot objects a..a+h.
    let a = attio.len();
    let nodes: Vec<&Side> = attio.iter().chain(hubspot).collect();
    let mut parent: Vec<usize> = (0..nodes.len()).collect();
    fn root(parent: &mut [usize], mut n: usize) -> usize {
        while parent[n] != n {
            parent[n] = parent[parent[n]];
            n = parent[n];
        }
        n
    }
    let mut holder: BTreeMap<&str, usize> = BTreeMap::new();
    for (n, side) in nodes.iter().enumerate() {
        if n < a && linked_ids.contains(&side.id) {
            continue;
        }
        for k in &side.keys {
            match holder.get(k.as_str()) {
                Some(&other) => {
                    let (x, y) = (root(&mut parent, n), root(&mut parent, other));
                    parent[x] = y;
                }
                None => {
                    holder.insert(k, n);
                }
            }
        }
    }
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (n, side) in nodes.iter().enumerate() {
        if n < a && linked_ids.contains(&side.id) {
            continue;
        }
        let r = root(&mut parent, n);
        groups.entry(r).or_default().push(n);
    }
    for members in groups.values() {
        let (attio_ids, hubspot_ids): (Vec<usize>, Vec<usize>) =
            members.iter().partition(|n| **n < a);
        let ids =
            |ns: &[usize]| -> Vec<String> { ns.iter().map(|n| nodes[*n].id.clone()).collect() };
        let keys: Vec<String> = members
            .iter()
            .flat_map(|n| nodes[*n].keys.iter().cloned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if keys.is_empty() {
            let one = |ns: &[usize]| ns.first().map(|n| nodes[*n].id.clone());
            plan.unmatched.push(Unmatched::NoKey {
                attio: one(&attio_ids),
                hubspot: one(&hubspot_ids),
            });
            continue;
        }
        if keys.iter().any(|k| linked_keys.contains(k)) {
            plan.unmatched.push(Unmatched::Taken {
                keys,
                attio: ids(&attio_ids),
                hubspot: ids(&hubspot_ids),
            });
            continue;
        }
        match (attio_ids.as_slice(), hubspot_ids.as_slice()) {
            ([x], [y]) => plan
                .pairs
                .push((nodes[*x].id.clone(), nodes[*y].id.clone())),
            ([x], []) => plan.attio_only.push(nodes[*x].id.clone()),
            ([], [y]) => plan.hubspot_only.push(nodes[*y].id.clone()),
            _ => plan.unmatched.push(Unmatched::Several {
                keys,
                attio: ids(&attio_ids),
                hubspot: ids(&hubspot_ids),
            }),
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(id: &str, keys: &[&str]) -> Side {
        Side {
            id: id.to_owned(),
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
        }
    }

    #[test]
    fn domains_are_compared_by_host_and_emails_by_case() {
        let domain = |t: &str| key(CrmObject::Companies, t);
        for typed in [
            "acme.com",
            "ACME.com ",
            "www.acme.com",
            "https://acme.com/",
            "http://www.acme.com:8080/about?x=1#top",
            "acme.com.",
            "//acme.com",
        ] {
            assert_eq!(domain(typed).as_deref(), Some("acme.com"), "{typed}");
        }
        assert_eq!(domain("app.acme.com").as_deref(), Some("app.acme.com"));
        assert_eq!(domain("https://"), None);
        assert_eq!(
            key(CrmObject::Contacts, " Ada@X.example ").as_deref(),
            Some("ada@x.example")
        );
        // HubSpot's URL and Attio's domain now pair instead of making one of each.
        let attio = [side("a1", &[&domain("acme.com").expect("key")])];
        let hubspot = [side(
            "h1",
            &[&domain("https://www.acme.com/").expect("key")],
        )];
        let plan = plan(&attio, &hubspot, &BTreeSet::new(), &BTreeSet::new());
        assert_eq!(plan.pairs, [("a1".to_owned(), "h1".to_owned())]);
    }

    #[test]
    fn shared_keys_pair_one_to_one_and_anything_else_is_left_alone() {
        let attio = [
            side("a1", &["ada@x"]),
            side("a2", &["bob@x"]),
            side("a3", &["cy@x", "cy@y"]),
            side("a4", &[]),
            side("a5", &["dee@x"]),
            side("a6", &["old@x"]),
            side("a7", &["linked@x"]),
        ];
        let hubspot = [
            side("h1", &["ada@x"]),
            side("h3", &["cy@x"]),
            side("h4", &["cy@y"]),
            side("h5", &["new@x"]),
            side("h6", &[]),
            side("h7", &["twice@x"]),
            side("h8", &["twice@x"]),
        ];
        let linked_keys: BTreeSet<String> = ["linked@x".to_owned()].into();
        let linked_ids: BTreeSet<String> = ["a6".to_owned()].into();
        let plan = plan(&attio, &hubspot, &linked_keys, &linked_ids);
        assert_eq!(plan.pairs, [("a1".to_owned(), "h1".to_owned())]);
        assert_eq!(plan.attio_only, ["a2", "a5"]);
        assert_eq!(plan.hubspot_only, ["h5"]);
        assert!(plan.unmatched.contains(&Unmatched::Several {
            keys: vec!["cy@x".into(), "cy@y".into()],
            attio: vec!["a3".into()],
            hubspot: vec!["h3".into(), "h4".into()],
        }));
        assert!(plan.unmatched.contains(&Unmatched::Several {
            keys: vec!["twice@x".into()],
            attio: vec![],
            hubspot: vec!["h7".into(), "h8".into()],
        }));
        assert!(plan.unmatched.contains(&Unmatched::NoKey {
            attio: Some("a4".into()),
            hubspot: None
        }));
        assert!(plan.unmatched.contains(&Unmatched::NoKey {
            attio: None,
            hubspot: Some("h6".into())
        }));
        assert!(plan.unmatched.contains(&Unmatched::Taken {
            keys: vec!["linked@x".into()],
            attio: vec!["a7".into()],
            hubspot: vec![],
        }));
        assert_eq!(plan.unmatched.len(), 5, "{:?}", plan.unmatched);
        let planned = plan.pairs.len() * 2 + plan.attio_only.len() + plan.hubspot_only.len();
        // a3+h3+h4, h7+h8, a4, h6, a7: every record but the linked a6 is in one place.
        assert_eq!(planned + 3 + 2 + 1 + 1 + 1, attio.len() + hubspot.len() - 1);
    }
}
