use executor::pool;

fn length(text: &str) -> usize {
    text.len()
}

fn main() {
    let text = String::from("borrowed");
    let _ = pool!(Process => {
        submit(length, text.as_str()).result()
    });
}
