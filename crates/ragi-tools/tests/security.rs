//! The security middleware (issue 11, item 1) through the test client: every rule and every
//! reference trap of `toolkit-references.md` §2.2, §2.5, §2.7, §2.8.

mod security {
    pub mod support;

    mod auth;
    mod cors;
    mod csrf;
    mod forwarded;
    mod https_redirect;
    mod security_headers;
    mod trusted_host;
}
