//! Manifests and indexes: the four media types a puller accepts, and the
//! choice of one platform's manifest from an index.

use serde::Deserialize;

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// The Accept types dockerd sends on a tag resolve, one header value each.
pub const ACCEPTED: [&str; 4] = [
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_MANIFEST,
    OCI_INDEX,
];

/// A content descriptor (config, layer, or index entry).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<Platform>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
}

/// Either kind of manifest document, told apart by its media type or shape.
#[derive(Debug, Clone)]
pub enum Document {
    Image {
        config: Descriptor,
        layers: Vec<Descriptor>,
    },
    Index {
        manifests: Vec<Descriptor>,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
}

impl Document {
    /// Parses a manifest body; `content_type` is the response's Content-Type.
    pub fn parse(body: &[u8], content_type: Option<&str>) -> Result<Document, String> {
        let raw: Raw =
            serde_json::from_slice(body).map_err(|e| format!("manifest is not valid JSON: {e}"))?;
        let media = content_type
            .map(|c| c.split(';').next().unwrap_or(c).trim().to_string())
            .filter(|c| ACCEPTED.contains(&c.as_str()))
            .or(raw.media_type);
        let is_index = match media.as_deref() {
            Some(OCI_INDEX) | Some(DOCKER_MANIFEST_LIST) => true,
            Some(_) => false,
            None => raw.manifests.is_some(),
        };
        if is_index {
            let manifests = raw.manifests.ok_or("index without `manifests`")?;
            check_digests(&manifests)?;
            return Ok(Document::Index { manifests });
        }
        match (raw.config, raw.layers) {
            (Some(config), Some(layers)) => {
                check_digests(std::slice::from_ref(&config))?;
                check_digests(&layers)?;
                Ok(Document::Image { config, layers })
            }
            _ => Err(format!(
                "unsupported manifest (media type {}): expected config and layers",
                media.as_deref().unwrap_or("unknown")
            )),
        }
    }
}

/// Every digest a manifest names becomes part of a request path: one that is not
/// `algorithm:encoded` (say `sha256:x/../../y`) would send the node elsewhere.
fn check_digests(descriptors: &[Descriptor]) -> Result<(), String> {
    match descriptors
        .iter()
        .find(|d| !super::name::is_digest_shaped(&d.digest))
    {
        Some(d) => Err(format!(
            "manifest names a malformed digest {:?}",
            d.digest.escape_debug().to_string()
        )),
        None => Ok(()),
    }
}

/// Picks the entry of an index for `platform` (`os/arch[/variant]`).
pub fn pick_platform<'a>(manifests: &'a [Descriptor], platform: &str) -> Option<&'a Descriptor> {
    let mut parts = platform.split('/');
    let os = parts.next().unwrap_or("linux");
    let arch = parts.next().unwrap_or("amd64");
    let variant = parts.next();
    manifests.iter().find(|m| match &m.platform {
        Some(p) => {
            p.os == os
                && p.architecture == arch
                && (variant.is_none() || p.variant.as_deref() == variant)
        }
        None => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_index_from_image() {
        let idx = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:aa","size":1,"platform":{"architecture":"arm64","os":"linux"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:bb","size":2,"platform":{"architecture":"amd64","os":"linux"}}]}"#;
        match Document::parse(idx, None).unwrap() {
            Document::Index { manifests } => {
                assert_eq!(
                    pick_platform(&manifests, "linux/amd64").unwrap().digest,
                    "sha256:bb"
                );
                assert!(pick_platform(&manifests, "windows/amd64").is_none());
            }
            _ => panic!("not an index"),
        }
        let img = br#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:cc","size":3},"layers":[{"mediaType":"y","digest":"sha256:dd","size":4}]}"#;
        assert!(matches!(
            Document::parse(img, Some(DOCKER_MANIFEST)).unwrap(),
            Document::Image { .. }
        ));
        assert!(Document::parse(b"{}", None).is_err());
        assert!(Document::parse(b"not json", None).is_err());
    }

    #[test]
    fn a_digest_that_is_a_path_is_refused() {
        let body = br#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:cc","size":3},"layers":[{"mediaType":"y","digest":"sha256:not-hex/../../x","size":4}]}"#;
        let err = Document::parse(body, None).unwrap_err();
        assert!(err.contains("malformed digest"), "{err}");
        let index = br#"{"manifests":[{"mediaType":"m","digest":"../x","size":1}]}"#;
        assert!(Document::parse(index, None).is_err());
    }
}
