pub fn run(_a: &[String]) -> crate::Result<()> { Ok(()) }
