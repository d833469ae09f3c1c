//! The stand-in's RSA signing keys, as PSC's Keycloak realm publishes them, and the
//! mint: good access tokens and tokens with one flaw on purpose.

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde_json::{Value, json};

use super::DEFAULT_AZP;

/// What is wrong with a minted token, on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flaw {
    /// Expired ten minutes ago (beyond any leeway).
    Expired,
    /// Valid from ten minutes from now.
    NotYetValid,
    /// Signed by the stand-in but naming another issuer.
    ForeignIssuer,
    /// Signed by a key whose `kid` is not in the JWKS.
    UnknownKey,
    /// `alg: none`, no signature.
    AlgNone,
    /// HS256 with the RSA public key (PEM) as the HMAC secret: the classic confusion.
    Hs256WithPublicKey,
    /// `acr` other than `eidas1`.
    WrongAcr,
    /// `typ: Refresh`, a refresh token presented as an access token.
    RefreshType,
    /// A valid token whose signature was altered.
    BadSignature,
}

/// What to mint.
#[derive(Debug, Clone)]
pub struct TokenSpec {
    pub idnat: String,
    pub azp: String,
    pub flaw: Option<Flaw>,
    /// Lifetime of a good token (PSC's is about two minutes).
    pub lifetime: Duration,
}

impl TokenSpec {
    /// A good access token for `idnat`.
    pub fn valid(idnat: &str) -> Self {
        TokenSpec {
            idnat: idnat.to_owned(),
            azp: DEFAULT_AZP.to_owned(),
            flaw: None,
            lifetime: Duration::from_secs(120),
        }
    }

    /// A token for `idnat` with `flaw`.
    pub fn flawed(idnat: &str, flaw: Flaw) -> Self {
        TokenSpec {
            flaw: Some(flaw),
            ..Self::valid(idnat)
        }
    }

    pub fn with_azp(mut self, azp: &str) -> Self {
        self.azp = azp.to_owned();
        self
    }

    pub fn with_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }
}

/// One RSA key: what signs, what verifies (introspection), and how the JWKS shows it.
pub(super) struct SigningKey {
    pub kid: String,
    encoding: EncodingKey,
    pub decoding: DecodingKey,
    n: String,
    e: String,
    /// SPKI PEM, for servers that take a static key, and the HS256 confusion's secret.
    pub public_pem: String,
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

impl SigningKey {
    /// A new RSA-2048 key (slow: run it off the runtime's threads).
    pub fn generate(kid: String) -> std::io::Result<Self> {
        let pair = KeyPair::generate(KeySize::Rsa2048)
            .map_err(|e| std::io::Error::other(format!("RSA key generation: {e}")))?;
        let private: Pkcs8V1Der<'static> = pair
            .as_der()
            .map_err(|e| std::io::Error::other(format!("RSA key encoding: {e}")))?;
        let encoding = EncodingKey::from_rsa_pem(pem("PRIVATE KEY", private.as_ref()).as_bytes())
            .map_err(|e| std::io::Error::other(format!("RSA signing key: {e}")))?;
        let public = pair.public_key();
        let spki: PublicKeyX509Der<'static> = public
            .as_der()
            .map_err(|e| std::io::Error::other(format!("RSA public key encoding: {e}")))?;
        let n = public.modulus().big_endian_without_leading_zero().to_vec();
        let e = public.exponent().big_endian_without_leading_zero().to_vec();
        Ok(SigningKey {
            kid,
            encoding,
            decoding: DecodingKey::from_rsa_raw_components(&n, &e),
            n: URL_SAFE_NO_PAD.encode(&n),
            e: URL_SAFE_NO_PAD.encode(&e),
            public_pem: pem("PUBLIC KEY", spki.as_ref()),
        })
    }

    fn jwk(&self) -> Value {
        json!({"kid": self.kid, "kty": "RSA", "alg": "RS256", "use": "sig", "n": self.n, "e": self.e})
    }
}

/// The published keys and the one kept back for `Flaw::UnknownKey`.
pub(super) struct Keys {
    /// Signs new tokens; always the last of `published`.
    published: Vec<Arc<SigningKey>>,
    /// Signs `Flaw::UnknownKey` tokens; never published.
    hidden: Arc<SigningKey>,
}

impl Keys {
    /// The first published key (`stand-in-1`) and the hidden one.
    pub fn generate() -> std::io::Result<Self> {
        Ok(Keys {
            published: vec![Arc::new(SigningKey::generate("stand-in-1".into())?)],
            hidden: Arc::new(SigningKey::generate("never-published".into())?),
        })
    }

    /// The key new tokens are signed with.
    pub fn current(&self) -> Arc<SigningKey> {
        // invariant: `published` starts with one key and never loses its last (withdraw).
        Arc::clone(&self.published[self.published.len() - 1])
    }

    /// Publishes `key` and signs new tokens with it; older keys stay published.
    pub fn publish(&mut self, key: SigningKey) {
        self.published.push(Arc::new(key));
    }

    /// Stops publishing `kid`, unless new tokens are signed with it; says whether a key
    /// was withdrawn.
    pub fn withdraw(&mut self, kid: &str) -> bool {
        let current = self.current().kid.clone();
        let before = self.published.len();
        self.published.retain(|k| k.kid != kid || k.kid == current);
        self.published.len() < before
    }

    /// The published key named `kid`.
    pub fn published(&self, kid: &str) -> Option<Arc<SigningKey>> {
        self.published.iter().find(|k| k.kid == kid).cloned()
    }

    /// The JWKS document.
    pub fn jwks(&self) -> Value {
        let keys: Vec<Value> = self.published.iter().map(|k| k.jwk()).collect();
        json!({ "keys": keys })
    }

    /// A token for `spec`, issued by `issuer` unless the flaw names another.
    pub fn mint(&self, issuer: &str, spec: &TokenSpec) -> String {
        let now = chrono::Utc::now().timestamp();
        let lifetime = i64::try_from(spec.lifetime.as_secs()).unwrap_or(120);
        let (iat, exp, nbf) = match spec.flaw {
            Some(Flaw::Expired) => (now - 900, now - 600, None),
            Some(Flaw::NotYetValid) => (now, now + 600 + lifetime, Some(now + 600)),
            _ => (now, now + lifetime, None),
        };
        let issuer = match spec.flaw {
            Some(Flaw::ForeignIssuer) => "https://auth.example.org/auth/realms/other".to_owned(),
            _ => issuer.to_owned(),
        };
        let mut claims = json!({
            "exp": exp, "iat": iat, "auth_time": iat,
            "jti": format!("{:032x}", rand::random::<u128>()),
            "iss": issuer,
            "sub": format!("{:032x}", rand::random::<u128>()),
            "typ": if spec.flaw == Some(Flaw::RefreshType) { "Refresh" } else { "Bearer" },
            "azp": spec.azp,
            "acr": if spec.flaw == Some(Flaw::WrongAcr) { "eidas2" } else { "eidas1" },
            "scope": "openid scope_all",
            "SubjectNameID": spec.idnat,
            "preferred_username": spec.idnat,
        });
        if let Some(nbf) = nbf {
            claims["nbf"] = json!(nbf);
        }
        let sign = |key: &SigningKey| {
            let mut header = Header::new(Algorithm::RS256);
            header.kid = Some(key.kid.clone());
            // invariant: the key was generated here and RS256 signing with it cannot fail.
            jsonwebtoken::encode(&header, &claims, &key.encoding)
                .unwrap_or_else(|e| unreachable!("stand-in signing: {e}"))
        };
        match spec.flaw {
            Some(Flaw::UnknownKey) => sign(&self.hidden),
            Some(Flaw::AlgNone) => {
                let header = json!({"alg": "none", "typ": "JWT", "kid": self.current().kid});
                format!(
                    "{}.{}.",
                    URL_SAFE_NO_PAD.encode(header.to_string()),
                    URL_SAFE_NO_PAD.encode(claims.to_string())
                )
            }
            Some(Flaw::Hs256WithPublicKey) => {
                let current = self.current();
                let mut header = Header::new(Algorithm::HS256);
                header.kid = Some(current.kid.clone());
                let secret = EncodingKey::from_secret(current.public_pem.as_bytes());
                // invariant: HMAC signing with any secret cannot fail.
                jsonwebtoken::encode(&header, &claims, &secret)
                    .unwrap_or_else(|e| unreachable!("stand-in signing: {e}"))
            }
            Some(Flaw::BadSignature) => {
                let token = sign(&self.current());
                let (body, signature) = token.rsplit_once('.').unwrap_or((&token, ""));
                let mut sig = URL_SAFE_NO_PAD.decode(signature).unwrap_or_default();
                if let Some(b) = sig.first_mut() {
                    *b ^= 0x55;
                }
                format!("{body}.{}", URL_SAFE_NO_PAD.encode(sig))
            }
            _ => sign(&self.current()),
        }
    }
}
