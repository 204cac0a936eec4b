//! The one place native errors become Python exceptions (classes defined in `ledgercore.errors`).

use ledgercore_native::Error;
use pyo3::prelude::*;
use pyo3::types::PyType;

fn class_name(err: &Error) -> &'static str {
    match err {
        Error::UnknownName { .. } => "UnknownNameError",
        Error::BadLength { .. } => "InvalidLengthError",
        Error::InvalidKey { .. } => "InvalidKeyError",
        Error::OutOfRange { .. } => "OutOfRangeError",
        Error::BatchMismatch(_) | Error::Malformed { .. } => "MalformedInputError",
        Error::Decode { .. } => "DecodeError",
        Error::Encode { .. } => "EncodeError",
    }
}

fn error_class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyType>> {
    py.import("ledgercore.errors")?.getattr(name)?.cast_into::<PyType>().map_err(PyErr::from)
}

/// An exception of the `ledgercore.errors` class `name`, for checks the bindings make themselves.
pub fn raise_as(py: Python<'_>, name: &str, message: String) -> PyErr {
    match error_class(py, name) {
        Ok(class) => PyErr::from_type(class, message),
        Err(import_failed) => import_failed,
    }
}

pub fn to_py(err: Error) -> PyErr {
    Python::attach(|py| {
        let class = match error_class(py, class_name(&err)) {
            Ok(class) => class,
            Err(import_failed) => return import_failed,
        };
        match err {
            // A decode error names the batch item it came from as `index`.
            Error::Decode { index: Some(index), .. } => {
                let made = class.call1((err.to_string(),)).and_then(|exc| {
                    exc.setattr("index", index)?;
                    Ok(exc)
                });
                match made {
                    Ok(exc) => PyErr::from_value(exc),
                    Err(failed) => failed,
                }
            }
            _ => PyErr::from_type(class, err.to_string()),
        }
    })
}

/// `result.or_raise()?` converts a native error at the boundary.
pub trait OrRaise<T> {
    fn or_raise(self) -> PyResult<T>;
}

impl<T> OrRaise<T> for Result<T, Error> {
    fn or_raise(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}

/// The name of `obj`'s type, for messages about input of the wrong type.
pub fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "object".into())
}

/// Input errors the bindings find themselves (wrong container shapes), raised as the same classes.
pub fn malformed(what: &'static str, reason: impl Into<String>) -> PyErr {
    to_py(Error::Malformed { what, reason: reason.into() })
}
