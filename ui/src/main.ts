import { mount } from 'svelte';
// The app's own Chinese font (Noto Sans SC, variable weight, split by unicode-range): see app.css.
import '@fontsource-variable/noto-sans-sc';
import './app.css';
import App from './App.svelte';

const target = document.getElementById('app');
if (!target) throw new Error('#app missing');
export default mount(App, { target });
