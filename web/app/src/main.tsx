import { render } from 'preact';
import { App } from './components/App';
import './styles.css';

const root = document.getElementById('app')!;
// Replace the "Opening Kith…" placeholder from index.html.
root.textContent = '';
render(<App />, root);
