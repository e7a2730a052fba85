//! Flash outcomes: what a form's handler answers once a service has
//! decided. A rule the person broke ("that code is not right") goes back
//! to them as an error message on the page they came from; anything else
//! (a database failure) is the site's error and answers as one. An area
//! says which of its errors are whose by implementing [`UserFault`].

use crate::web::{AppError, AppResult, Flash};

/// An area's error, split into the person's mistakes, whose message is
/// written for them, and the site's own failures.
pub trait UserFault: Into<AppError> + Sized {
    /// `Ok(message)` when the person can act on the error (the message is
    /// theirs to read); the error itself when it is the site's.
    fn for_user(self) -> Result<String, Self>;
}

impl Flash {
    /// `error` shown on `back` when it is the person's mistake; the site's
    /// error otherwise.
    pub fn refused<E: UserFault>(back: impl Into<String>, error: E) -> AppResult<Flash> {
        match error.for_user() {
            Ok(message) => Ok(Flash::error(back, message)),
            Err(e) => Err(e.into()),
        }
    }

    /// The flash `outcome` leads to: `done` as a success on `back`, the
    /// person's mistake as an error on `back`, or the site's error.
    pub fn settle<T, E: UserFault>(
        back: impl Into<String>,
        outcome: Result<T, E>,
        done: impl Into<String>,
    ) -> AppResult<Flash> {
        Flash::settle_with(back, outcome, |back, _| Flash::success(back, done))
    }

    /// As [`Flash::settle`], with the flash of a success built from `back`
    /// and the value the service returned.
    pub fn settle_with<T, E: UserFault>(
        back: impl Into<String>,
        outcome: Result<T, E>,
        done: impl FnOnce(String, T) -> Flash,
    ) -> AppResult<Flash> {
        let back = back.into();
        match outcome {
            Ok(value) => Ok(done(back, value)),
            Err(e) => Flash::refused(back, e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    enum Sample {
        Invalid(String),
        Broken,
    }

    impl From<Sample> for AppError {
        fn from(e: Sample) -> AppError {
            AppError::Internal(format!("{e:?}"))
        }
    }

    impl UserFault for Sample {
        fn for_user(self) -> Result<String, Sample> {
            match self {
                Sample::Invalid(m) => Ok(m),
                e => Err(e),
            }
        }
    }

    #[test]
    fn the_persons_mistake_is_a_message_and_the_sites_failure_an_error() {
        assert!(Flash::settle("/back", Ok::<_, Sample>(()), "Saved.").is_ok());
        assert!(Flash::settle("/back", Err::<(), _>(Sample::Invalid("Too long.".into())), "Saved.").is_ok());
        match Flash::settle("/back", Err::<(), _>(Sample::Broken), "Saved.") {
            Err(AppError::Internal(m)) => assert_eq!(m, "Broken"),
            Err(e) => panic!("the site's failure, as itself: {e:?}"),
            Ok(_) => panic!("the site's failure is no flash"),
        }
        let mut seen = None;
        let built = Flash::settle_with("/back", Ok::<_, Sample>(3), |back, n| {
            seen = Some((back.clone(), n));
            Flash::info(back, format!("{n} done"))
        });
        assert!(built.is_ok());
        assert_eq!(seen, Some(("/back".to_string(), 3)), "the success is built from where to go and the value");
        assert_eq!(Sample::Invalid("Too long.".into()).for_user().ok().as_deref(), Some("Too long."));
    }
}
